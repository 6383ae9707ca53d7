"""Key providers: where the vault's key-encryption key (KEK) lives and what may be done with it.

The vault never handles a KEK directly: it asks its provider to wrap and unwrap data keys
and to MAC manifests under a key id. Local providers (a 0600 key file, an environment
variable) hold KEKs in this process and derive one subkey per purpose with HKDF; a remote
provider (HashiCorp Vault transit, an HSM over PKCS#11, see ``transit.py``) performs the
same operations where the key lives, and the KEK never leaves it. A KEK is never written
to the database or a log; only key ids (a one-way fingerprint) are.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import VaultError
from appliance.vault.format import NONCE_BYTES, Suite
from appliance.vault.fsutil import fsync_dir, private_dir, write_atomic
from appliance.vault.master_key import read_private_text

if TYPE_CHECKING:
    from appliance.config import Settings

KEK_BYTES = 32
Step = Callable[[str, str], None]


class KeyProvider(Protocol):
    """What the vault needs from wherever its KEKs live."""

    name: str

    def current_key_id(self) -> str | None:
        """The key new data keys are wrapped under; None when there is none yet."""

    def key_ids(self) -> list[str]:
        """Every key this provider can unwrap with."""

    def wrap(self, key_id: str, suite: Suite, data_key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, key_id: str, suite: Suite, wrapped: bytes, aad: bytes) -> bytes:
        """Raise VaultError if the key is unknown or the wrapped key does not authenticate."""

    def mac(self, key_id: str, suite: Suite, data: bytes) -> str:
        """A MAC of a manifest's canonical bytes, as ``hmac-<hash>:<hex>``."""

    def create_key(self, on_step: Step | None = None) -> str:
        """Make a new current key (durably) and return its id; old keys stay usable."""

    def retire_keys(self, keep: str, on_step: Step | None = None) -> list[str]:
        """Destroy every key but ``keep``; return the ids destroyed."""


def key_id_of(kek: bytes) -> str:
    """A public fingerprint of a KEK (one-way: it reveals nothing of the key)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=8, salt=None, info=b"appliance-vault/1 key-id")
    return "kek-" + hkdf.derive(kek).hex()


class _LocalKeys:
    """Wrap, unwrap and MAC with KEKs held in this process."""

    name = "local"

    def _keks(self) -> dict[str, bytes]:
        raise NotImplementedError

    def _kek(self, key_id: str) -> bytes:
        kek = self._keks().get(key_id)
        if kek is None:
            raise VaultError(
                f"the {self.name} key provider has no KEK {key_id} (wrong KEK, or it was "
                f"retired); it has: {', '.join(sorted(self._keks())) or 'none'}"
            )
        return kek

    def key_ids(self) -> list[str]:
        return sorted(self._keks())

    def wrap(self, key_id: str, suite: Suite, data_key: bytes, aad: bytes) -> bytes:
        wrap_key = suite.derive(self._kek(key_id), "wrap")
        return suite.seal_key(wrap_key, secrets.token_bytes(NONCE_BYTES), data_key, aad)

    def unwrap(self, key_id: str, suite: Suite, wrapped: bytes, aad: bytes) -> bytes:
        wrap_key = suite.derive(self._kek(key_id), "wrap")
        try:
            return suite.open_key(wrap_key, wrapped, aad)
        except (InvalidTag, ValueError):
            raise VaultError(f"a data key does not unwrap under {key_id}") from None

    def mac(self, key_id: str, suite: Suite, data: bytes) -> str:
        return suite.mac(suite.derive(self._kek(key_id), "manifest", 32), data)


def _parse_hex_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEK_BYTES:
        raise VaultError(f"{where} is malformed (expected {KEK_BYTES * 2} hex digits)")
    return key


class FileKeyProvider(_LocalKeys):
    """KEK files ``<key id>.kek`` (hex, 0600) in a 0700 directory; ``current`` names the
    one new models are sealed under. A file readable by group or others is refused."""

    name = "file"
    CURRENT = "current"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _read_private(self, path: Path) -> str:
        return read_private_text(path, "key file")

    def _keks(self) -> dict[str, bytes]:
        keks = {}
        for path in sorted(self.directory.glob("*.kek")):
            kek = _parse_hex_key(self._read_private(path), f"key file {path}")
            key_id = key_id_of(kek)
            if path.stem != key_id:
                raise VaultError(f"key file {path} holds {key_id}, not {path.stem}")
            keks[key_id] = kek
        return keks

    def current_key_id(self) -> str | None:
        pointer = self.directory / self.CURRENT
        if not pointer.exists():
            return None
        key_id = self._read_private(pointer).strip()
        self._kek(key_id)  # the pointer names a key that is there, readable and private
        return key_id

    def create_key(self, on_step: Step | None = None) -> str:
        step = on_step or (lambda _step, _detail: None)
        private_dir(self.directory)
        kek = secrets.token_bytes(KEK_BYTES)
        key_id = key_id_of(kek)
        write_atomic(self.directory / f"{key_id}.kek", (kek.hex() + "\n").encode())
        step("key-written", key_id)
        write_atomic(self.directory / self.CURRENT, (key_id + "\n").encode())
        step("key-current", key_id)
        return key_id

    def retire_keys(self, keep: str, on_step: Step | None = None) -> list[str]:
        step = on_step or (lambda _step, _detail: None)
        if keep not in self._keks():
            raise VaultError(f"refusing to retire keys: {keep} is not there")
        retired = []
        for key_id in self.key_ids():
            if key_id != keep:
                (self.directory / f"{key_id}.kek").unlink()
                fsync_dir(self.directory)
                retired.append(key_id)
                step("key-retired", key_id)
        return retired


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EnvKeyProvider(_LocalKeys):
    """KEKs in one environment variable: hex keys separated by commas, the current one first.

    This provider cannot create or destroy keys: to rotate, set ``NEW,OLD``, run
    ``rotate-kek`` (it rewraps every model under NEW), then drop OLD from the variable.
    """

    name = "env"

    def __init__(self, variable: str, environ: Mapping[str, str] | None = None) -> None:
        self.variable = variable
        self.environ = os.environ if environ is None else environ

    def _ordered(self) -> list[bytes]:
        raw = self.environ.get(self.variable, "")
        where = f"environment variable {self.variable}"
        return [_parse_hex_key(part, where) for part in raw.split(",") if part.strip()]

    def _keks(self) -> dict[str, bytes]:
        return {key_id_of(kek): kek for kek in self._ordered()}

    def current_key_id(self) -> str | None:
        keys = self._ordered()
        return key_id_of(keys[0]) if keys else None

    def create_key(self, on_step: Step | None = None) -> str:
        current = self.current_key_id()
        if current is None:
            raise VaultError(
                f"environment variable {self.variable} holds no KEK; set it to a new key "
                "(`openssl rand -hex 32`)"
            )
        return current  # the operator put the new key first

    def retire_keys(self, keep: str, on_step: Step | None = None) -> list[str]:
        return []  # the operator removes old keys from the variable


def build_provider(settings: Settings) -> KeyProvider:
    if settings.vault_key_provider == "env":
        return EnvKeyProvider(settings.vault_kek_env)
    return FileKeyProvider(settings.effective_vault_key_dir)
