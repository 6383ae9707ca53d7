"""Rate limits shared by the API workers of one host without Redis: a table in a file.

Used instead of ``LocalLimiter`` when no Redis is configured (mode "local") and while Redis is
unreachable (mode "local-fallback"), so that the gunicorn workers of a host share one budget
per key instead of each admitting the whole rate. Several API hosts still count apart: each
has its own file. The decisions are those of ``CHECK_LUA`` (``appliance.limits.gcra``).

The file (``HOME/run/ratelimits.bin``, 0600) is mapped into every worker and changed under an
exclusive ``flock``, held for the few microseconds one check or one charge takes (no I/O
inside: the pages are the kernel's page cache, written back whenever it likes). A lock is
released by the kernel when its process dies, so a killed worker never leaves it held.

The table is set-associative, so its memory is bounded: ``sets`` x ``ways`` slots of 32
bytes (the key's 128-bit BLAKE2b digest, a value, the time it expires). A key maps to one
set and may be in any of its ways. A slot whose expiry has passed is free: a GCRA bucket
expires at its TAT (past it, it equals a missing one, as in Redis), a day's token counter
two days after its last charge. A new key takes a free slot of its set, or else evicts the
one closest to expiry, which forgives at most that key's current burst.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from appliance.limits.gcra import TOKEN_COUNTER_TTL_S, Rate, gcra

ALLOWED = (0, 0, 0)
SHARED_LIMITS_FILE = "ratelimits.bin"  # in the run directory (HOME/run)
MAGIC = b"APLRLv01"
HEADER = struct.Struct("<8sII")  # magic, sets, ways
HEADER_SIZE = 64
SLOT = struct.Struct("<16sqq")  # key digest, value, expires at (µs since the epoch)
TOKEN_COUNTER_TTL_US = TOKEN_COUNTER_TTL_S * 1_000_000


class SharedFileError(Exception):
    """The file exists but is not a table of this layout."""


def digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


class SharedFileLimiter:
    """``LocalLimiter``'s interface over a file every process of the host maps."""

    backend = "shared-file (this host only)"

    def __init__(self, path: Path, *, sets: int = 16_384, ways: int = 8) -> None:
        self.path = path
        self.sets, self.ways = sets, ways
        self.size = HEADER_SIZE + sets * ways * SLOT.size
        self._set = struct.Struct("<" + "16sqq" * ways)
        self._lock = threading.Lock()  # flock does not exclude the threads of one process
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._pid = 0
        self._open()  # here, so that a file that cannot be used is known at once

    def check(
        self,
        token_key: str,
        tokens_per_day: int | None,
        buckets: Sequence[tuple[str, Rate]],
        now_us: int,
    ) -> tuple[int, int, int]:
        """The reply of ``CHECK_LUA`` for the same arguments (see ``appliance.limits.gcra``)."""
        keys = [digest(key) for key, _ in buckets]
        token = digest(token_key) if tokens_per_day is not None else b""
        with self._lock:
            table = self._mapped()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if tokens_per_day is not None:
                    used = self._find(table, token, now_us)[1]
                    if used >= tokens_per_day:
                        return (2, 0, used)
                new: list[int] = []
                worst, worst_i = 0, 0
                for i, (key, (_, rate)) in enumerate(zip(keys, buckets, strict=True), start=1):
                    tat, wait = gcra(self._find(table, key, now_us)[1], now_us, rate)
                    if wait > worst:
                        worst, worst_i = wait, i
                    new.append(tat)
                if worst_i:
                    return (1, worst_i, worst)
                for key, tat in zip(keys, new, strict=True):
                    # Found again: two new keys of one set must not take the same free slot.
                    SLOT.pack_into(table, self._find(table, key, now_us)[0], key, tat, tat)
                return ALLOWED
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def peek(
        self, token_key: str, bucket_keys: Sequence[str], now_us: int
    ) -> tuple[int, list[int]]:
        """(tokens used today, each bucket's TAT; 0 for none), changing nothing."""
        keys = [digest(token_key), *(digest(key) for key in bucket_keys)]
        with self._lock:
            table = self._mapped()
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            try:
                values = [self._find(table, key, now_us)[1] for key in keys]
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return values[0], values[1:]

    def charge(self, token_key: str, tokens: int, now_us: int) -> int:
        key = digest(token_key)
        with self._lock:
            table = self._mapped()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                offset, used = self._find(table, key, now_us)
                total = used + tokens
                SLOT.pack_into(table, offset, key, total, now_us + TOKEN_COUNTER_TTL_US)
                return total
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            self._release()

    # -- internals -------------------------------------------------------------------------

    def _find(self, table: mmap.mmap, key: bytes, now_us: int) -> tuple[int, int]:
        """(offset of the key's slot, or of the one it would take; its live value, else 0)."""
        base = HEADER_SIZE + int.from_bytes(key[:8], "little") % self.sets * self._set.size
        fields = self._set.unpack_from(table, base)
        free = evict = -1
        soonest = 0
        for way in range(self.ways):
            held, value, expires = fields[3 * way : 3 * way + 3]
            if held == key:
                return base + way * SLOT.size, value if expires > now_us else 0
            if expires <= now_us:
                if free < 0:
                    free = way
            elif evict < 0 or expires < soonest:
                evict, soonest = way, expires
        return base + (free if free >= 0 else evict) * SLOT.size, 0

    def _mapped(self) -> mmap.mmap:
        # A forked child shares its parent's open file, and so its flock: it opens its own.
        if self._pid != os.getpid() or self._map is None:
            self._release()
            self._open()
        assert self._map is not None
        return self._map

    def _open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._initialise(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            table = mmap.mmap(fd, self.size)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._map, self._pid = fd, table, os.getpid()

    def _initialise(self, fd: int) -> None:
        """Size and stamp a new (or never stamped) file; refuse one of another layout."""
        size = os.fstat(fd).st_size
        header = os.pread(fd, HEADER.size, 0)
        if size == 0 or (size == self.size and header == bytes(HEADER.size)):
            # Every block allocated now: a page of a sparse file written through the map on a
            # full disk would kill the worker (SIGBUS); a full disk fails here instead.
            os.posix_fallocate(fd, 0, self.size)
            os.pwrite(fd, HEADER.pack(MAGIC, self.sets, self.ways), 0)
            return
        if size != self.size or header != HEADER.pack(MAGIC, self.sets, self.ways):
            raise SharedFileError(
                f"{self.path} is not a rate-limit table of {self.sets} x {self.ways} slots"
            )

    def _release(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
