"""Vault format, version 1: cipher suites, chunk layout, nonces, associated data, manifest.

One sealed model is a directory ``VAULT/<name>/`` holding ``manifest.json`` and one blob
per file under an opaque name (``blobs/000000.enc``, ...). A blob is the file's chunks,
each ``ciphertext || tag``, back to back; every chunk but the last holds exactly
``chunk_size`` plaintext bytes, and an empty file is one empty final chunk. The layout is
described for operators and auditors in ``docs/vault.md``; this module is its only code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import VaultError

FORMAT = "appliance-vault"
VERSION = 1
TAG_BYTES = 16
NONCE_BYTES = 12
MANIFEST_NAME = "manifest.json"
BLOB_DIR = "blobs"
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_CHUNK_AAD = b"appliance-vault/1 chunk\x00"
_WRAP_AAD = b"appliance-vault/1 data-key\x00"


class ChunkCipher:
    """One data key's AEAD: encrypt/decrypt a chunk into a caller's buffer (no allocation)."""

    def encrypt_into(self, nonce: bytes, data: Any, aad: bytes, out: Any) -> None:
        raise NotImplementedError

    def decrypt_into(self, nonce: bytes, data: Any, aad: bytes, out: Any) -> None:
        """Raise cryptography's InvalidTag when the chunk does not authenticate."""
        raise NotImplementedError


class _AesGcm(ChunkCipher):
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt_into(self, nonce: bytes, data: Any, aad: bytes, out: Any) -> None:
        self._aead.encrypt_into(nonce, data, aad, out)

    def decrypt_into(self, nonce: bytes, data: Any, aad: bytes, out: Any) -> None:
        self._aead.decrypt_into(nonce, data, aad, out)


class _Sm4Gcm(ChunkCipher):
    """SM4 in GCM mode (GB/T 32907 block cipher); cryptography has no AEAD class for it."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encrypt_into(self, nonce: bytes, data: Any, aad: bytes, out: Any) -> None:
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        n = len(data)
        view = memoryview(out)
        written = enc.update_into(data, view) if n else 0
        enc.finalize()
        assert written == n
        view[n : n + TAG_BYTES] = enc.tag

    def decrypt_into(self, nonce: bytes, data: Any, aad: bytes, out: Any) -> None:
        data = memoryview(data)
        if len(data) < TAG_BYTES:
            raise InvalidTag()
        n = len(data) - TAG_BYTES
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, bytes(data[n:]))).decryptor()
        dec.authenticate_additional_data(aad)
        if n:
            dec.update_into(data[:n], out)  # GCM is a stream mode: no block of slack needed
        dec.finalize()


@dataclass(frozen=True)
class Suite:
    """A cipher suite: the chunk AEAD, its key size and the KDF/MAC hash of the key wrap."""

    name: str
    key_bytes: int
    hash_name: str  # HKDF and manifest HMAC hash

    def chunk_cipher(self, key: bytes) -> ChunkCipher:
        if len(key) != self.key_bytes:
            raise VaultError(f"a {self.name} data key must be {self.key_bytes} bytes")
        return _AesGcm(key) if self.name == "aes-256-gcm" else _Sm4Gcm(key)

    def hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA256() if self.hash_name == "sha256" else hashes.SM3()

    def derive(self, secret: bytes, purpose: str, length: int | None = None) -> bytes:
        info = f"appliance-vault/1 {purpose} {self.name}".encode()
        hkdf = HKDF(algorithm=self.hash(), length=length or self.key_bytes, salt=None, info=info)
        return hkdf.derive(secret)

    def mac(self, key: bytes, data: bytes) -> str:
        from cryptography.hazmat.primitives import hmac as crypto_hmac

        h = crypto_hmac.HMAC(key, self.hash())
        h.update(data)
        return f"hmac-{self.hash_name}:" + h.finalize().hex()

    def seal_key(self, wrap_key: bytes, nonce: bytes, data_key: bytes, aad: bytes) -> bytes:
        out = bytearray(len(data_key) + TAG_BYTES)
        self.chunk_cipher(wrap_key).encrypt_into(nonce, data_key, aad, out)
        return nonce + bytes(out)

    def open_key(self, wrap_key: bytes, wrapped: bytes, aad: bytes) -> bytes:
        nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        out = bytearray(max(0, len(body) - TAG_BYTES))
        self.chunk_cipher(wrap_key).decrypt_into(nonce, body, aad, out)
        return bytes(out)


SUITES = {
    "aes-256-gcm": Suite("aes-256-gcm", 32, "sha256"),
    # Chinese national cryptography throughout: SM4-GCM chunks and key wrap, HMAC-SM3
    # manifest, HKDF-SM3 key derivation. (File digests stay SHA-256, as the format says.)
    "sm4-gcm": Suite("sm4-gcm", 16, "sm3"),
}


def suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise VaultError(f"unknown cipher {name!r}; use one of {', '.join(SUITES)}") from None


# --- chunk layout ------------------------------------------------------------------


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of a ``size``-byte file: an empty file still has one (empty, final) chunk."""
    return max(1, -(-size // chunk_size))


def blob_size(size: int, chunk_size: int) -> int:
    return size + TAG_BYTES * chunk_count(size, chunk_size)


def nonce(index: int) -> bytes:
    """4 zero bytes and the chunk index (big-endian u64): unique because each data key
    encrypts exactly one file, once."""
    return struct.pack(">IQ", 0, index)


def file_aad_prefix(model_id: bytes, path: str) -> bytes:
    encoded = path.encode("utf-8")
    return _CHUNK_AAD + model_id + struct.pack(">H", len(encoded)) + encoded


def chunk_aad(prefix: bytes, index: int, final: bool) -> bytes:
    """Binds the model, the file, the chunk's index and whether it is the last one."""
    return prefix + struct.pack(">QB", index, 1 if final else 0)


def wrap_aad(model_id: bytes, path: str, suite_name: str) -> bytes:
    encoded = path.encode("utf-8")
    return (
        _WRAP_AAD
        + suite_name.encode()
        + b"\x00"
        + model_id
        + struct.pack(">H", len(encoded))
        + encoded
    )


# --- manifest ----------------------------------------------------------------------


@dataclass
class FileEntry:
    path: str  # relative, "/"-separated, as in the source directory
    blob: str  # relative to the model directory
    size: int
    sha256: str
    wrapped_key: str  # base64 of nonce || wrapped data key || tag


@dataclass
class Manifest:
    name: str
    model_id: str  # 32 hex digits, random per import
    kind: str  # model | adapter | files
    cipher: str
    chunk_size: int
    key_id: str
    created_at: str
    files: list[FileEntry] = field(default_factory=list)
    mac: str = ""

    @property
    def model_id_bytes(self) -> bytes:
        return bytes.fromhex(self.model_id)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def body(self) -> dict[str, Any]:
        data = {"format": FORMAT, "version": VERSION, **asdict(self)}
        data.pop("mac")
        return data

    def canonical(self) -> bytes:
        """The bytes the MAC covers: every field but the MAC, in canonical JSON."""
        return json.dumps(
            self.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode()

    def to_json(self) -> bytes:
        return (json.dumps({**self.body(), "mac": self.mac}, indent=1) + "\n").encode()


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """Structure only; the MAC is checked by the caller with the KEK."""
    try:
        data = json.loads(raw)
        if data.pop("format") != FORMAT:
            raise ValueError("not a vault manifest")
        version = data.pop("version")
        if version != VERSION:
            raise VaultError(f"{where}: format version {version} is not supported (this is 1)")
        files = [FileEntry(**f) for f in data.pop("files")]
        manifest = Manifest(files=files, **data)
        bytes.fromhex(manifest.model_id)
        suite(manifest.cipher)
        if not isinstance(manifest.chunk_size, int) or manifest.chunk_size <= 0:
            raise ValueError("bad chunk size")
    except VaultError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise VaultError(f"{where}: manifest is malformed ({exc})") from None
    return manifest


def check_mac(manifest: Manifest, expected: str, where: str) -> None:
    """``expected`` is the key provider's MAC of ``manifest.canonical()``."""
    if not hmac.compare_digest(expected.encode(), manifest.mac.encode()):
        raise VaultError(
            f"{where}: manifest fails authentication (edited, or swapped from another model)"
        )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def sha256() -> Any:
    return hashlib.sha256()
