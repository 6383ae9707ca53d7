"""The engine key: the one credential between the gateway and the model servers.

The built-in engine requires it on every route but ``/health`` and vLLM on ``/v1/*``
(``--api-key``, or ``VLLM_API_KEY``); only the gateway (the API), the fine-tune rollout and
the engines hold it. It is either the setting ``engine_key`` (compose passes it as a secret
file) or, by default, a 0600 file in the home's ``keys/`` like the master key:

- ``keys/engine.key``: the current key, one line. ``appliance init`` makes it, and every
  process that needs it makes it on first use in a home initialised before it existed;
- ``keys/engine.key.previous``: after ``appliance engine rotate-key``, the key it replaced
  and when it stops being accepted (JSON), so nothing fails while processes catch up.

It is a file of its own rather than a key derived from the master key because it leaves
the home: the deployment hands the same value to vLLM on other machines, and rotating it
must not rotate the master key. ``EngineKeys`` reads the files again whenever they change
(checked at most once a second), so a rotation needs no restart of the engines or the
gateway.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.errors import VaultError
from appliance.vault.fsutil import fsync_dir, private_dir, write_all, write_atomic
from appliance.vault.master_key import read_private_text

if TYPE_CHECKING:
    from appliance.config import Settings

log = logging.getLogger(__name__)

KEY_BYTES = 32
KEY_RE = re.compile(r"[!-~]{32,512}")  # printable ASCII, no spaces: an HTTP header value
PREVIOUS_SUFFIX = ".previous"
DEFAULT_GRACE_S = 300.0
RECHECK_S = 1.0
BEARER = "Bearer "


def new_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def check_key(key: str, where: str) -> str:
    if not KEY_RE.fullmatch(key):
        raise VaultError(
            f"{where} is malformed (expected 32 to 512 printable characters without spaces)"
        )
    return key


def ensure_engine_key(path: Path) -> bool:
    """Create the key file (0600, its directory 0700) unless it exists; True if created.

    Safe against a concurrent creator: the file appears whole (written aside, then
    hard-linked into place), and whoever comes second keeps the first one's key.
    """
    if path.exists():
        return False
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.new-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        write_all(fd, (new_key() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def read_engine_key(path: Path) -> str:
    """The current key, refusing a file that is missing, malformed or readable by others."""
    try:
        text = read_private_text(path, "engine key file", "; run `appliance init`")
    except UnicodeDecodeError:
        text = ""
    return check_key(text.strip(), f"engine key file {path}")


@dataclass(frozen=True)
class Previous:
    key: str
    expires_at: float  # time.time()


def read_previous(path: Path) -> Previous | None:
    """The replaced key of ``path`` and its expiry, or None (no rotation pending)."""
    file = previous_path(path)
    try:
        data = json.loads(read_private_text(file, "previous engine key file"))
        previous = Previous(str(data["key"]), float(data["expires_at"]))
    except VaultError:
        if not file.exists():
            return None
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise VaultError(f"previous engine key file {file} is malformed") from None
    check_key(previous.key, f"previous engine key file {file}")
    return previous


@dataclass(frozen=True)
class Rotation:
    path: Path
    changed: bool  # False: the key given was already the current one
    previous_expires_at: float | None  # None: the old key is refused at once


def rotate_engine_key(
    path: Path,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    key: str | None = None,
    now: float | None = None,
) -> Rotation:
    """Make ``key`` (default: a new random one) the current key of ``path``.

    The key it replaces stays accepted for ``grace_s`` seconds (0: refused at once). The
    previous file is written before the current one, so at every instant the old key is
    accepted as one or the other. Giving the current key again changes nothing.
    """
    key = check_key(key, "the new engine key") if key is not None else new_key()
    now = time.time() if now is None else now
    private_dir(path.parent)
    old = read_engine_key(path) if path.exists() else None
    if old is not None and hmac.compare_digest(old.encode(), key.encode()):
        return Rotation(path, changed=False, previous_expires_at=None)
    expires_at: float | None = None
    if old is not None and grace_s > 0:
        expires_at = now + grace_s
        record = json.dumps({"key": old, "expires_at": expires_at}) + "\n"
        write_atomic(previous_path(path), record.encode("ascii"))
    else:
        previous_path(path).unlink(missing_ok=True)
    write_atomic(path, (key + "\n").encode("ascii"))
    return Rotation(path, changed=True, previous_expires_at=expires_at)


class EngineKeys:
    """The engine key as a process sees it: ``current()`` (what a client sends) and
    ``accepts()`` (what an engine lets in: the current key, and the previous one until its
    grace period ends).

    File-based keys are read again when their files change, checked at most every
    ``recheck_s`` seconds; a file that turns unreadable or malformed later keeps the keys
    last read (and says so in the log). A fixed key (the setting) never changes.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        fixed: str | None = None,
        create: bool = True,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if (path is None) == (fixed is None):
            raise ValueError("give exactly one of path and fixed")
        self.path = Path(path) if path is not None else None
        self.fixed = fixed is not None
        self.recheck_s = recheck_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._signature: tuple[object, ...] | None = None
        self._previous: Previous | None = None
        if fixed is not None:
            self._current = check_key(fixed, "the setting engine_key")
            return
        assert self.path is not None
        if create:
            ensure_engine_key(self.path)
        self._current = read_engine_key(self.path)
        self._previous = read_previous(self.path)
        self._signature = self._stat()
        self._checked_at = clock()

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> EngineKeys:
        """The setting ``engine_key`` if set, else the home's key file (made if missing)."""
        if settings.engine_key is not None:
            return cls(fixed=settings.engine_key.get_secret_value())
        return cls(settings.engine_key_path, create=create)

    def current(self) -> str:
        self._refresh()
        return self._current

    def authorization(self) -> str:
        """The ``Authorization`` header value a client sends."""
        return BEARER + self.current()

    def previous(self) -> str | None:
        """The replaced key while it is still accepted, else None."""
        self._refresh()
        previous = self._previous
        if previous is None or self._wall_clock() >= previous.expires_at:
            return None
        return previous.key

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is the current key or the previous one in its grace period
        (compared in constant time)."""
        given = presented.encode("utf-8", "replace")
        ok = hmac.compare_digest(given, self.current().encode())
        previous = self.previous()
        if previous is not None:
            ok = hmac.compare_digest(given, previous.encode()) or ok
        return ok

    def accepts_header(self, value: str | None) -> bool:
        """Whether an ``Authorization`` header carries an accepted key (``Bearer KEY``,
        exactly, as vLLM checks it)."""
        if not value or not value.startswith(BEARER):
            return False
        return self.accepts(value[len(BEARER) :])

    # ------------------------------------------------------------------ files

    def _stat(self) -> tuple[object, ...]:
        assert self.path is not None
        signature: list[object] = []
        for file in (self.path, previous_path(self.path)):
            try:
                st = file.stat()
            except FileNotFoundError:
                signature.append(None)
            else:
                signature.append((st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode))
        return tuple(signature)

    def _refresh(self) -> None:
        if self.fixed or self._clock() - self._checked_at < self.recheck_s:
            return
        with self._lock:
            now = self._clock()
            if now - self._checked_at < self.recheck_s:
                return
            self._checked_at = now
            signature = self._stat()
            if signature == self._signature:
                return
            assert self.path is not None
            try:
                current, previous = read_engine_key(self.path), read_previous(self.path)
            except (VaultError, OSError) as exc:
                log.error("the engine key files changed but cannot be read; keeping the keys "
                          "read before: %s", getattr(exc, "message", exc))  # fmt: skip
                self._signature = signature
                return
            if current != self._current:
                log.info("engine key %s changed: using the new key", self.path)
            self._current, self._previous, self._signature = current, previous, signature
