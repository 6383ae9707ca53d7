"""The master key: 32 random bytes in a 0600 file under HOME/keys; never in the database.

Purpose-specific keys (portal session signing, keyed hashes) are derived from it with
HKDF, so one file is the only secret an appliance has to protect and back up.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import VaultError

KEY_BYTES = 32


def create_master_key(path: Path) -> bool:
    """Create the key file (0600, its directory 0700). Return False if it already exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return True


def read_private_text(path: Path, what: str, missing_hint: str = "") -> str:
    """A key file's text, refusing one that is missing or accessible by group or others."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise VaultError(f"{what} {path} does not exist{missing_hint}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultError(
            f"{what} {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )
    return path.read_text(encoding="ascii")


def load_master_key(path: Path) -> bytes:
    """Read the key, refusing a file that is missing, malformed or readable by others."""
    try:
        key = bytes.fromhex(read_private_text(path, "master key file", "; run `appliance init`"))
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) != KEY_BYTES:
        raise VaultError(
            f"master key file {path} is malformed (expected {KEY_BYTES * 2} hex digits)"
        )
    return key


def derive_key(master: bytes, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose, independent of the keys derived for any other purpose."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
    return hkdf.derive(master)
