"""The vault: seal a model directory, list, verify, open sealed files, rotate the KEK.

``VAULT/<name>/manifest.json`` + ``VAULT/<name>/blobs/NNNNNN.enc`` (see ``format.py`` and
``docs/vault.md``). Imports are staged in ``VAULT/.staging-*`` and renamed into place
whole. A lock file orders rotation (exclusive) against the moments imports wrap keys and
readers unwrap them (shared), so no data key is wrapped under a KEK being retired.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag

from appliance.errors import Conflict, InvalidRequest, NotFound, VaultError
from appliance.vault import pipeline
from appliance.vault.format import (
    BLOB_DIR,
    DEFAULT_CHUNK_SIZE,
    MANIFEST_NAME,
    NAME_RE,
    TAG_BYTES,
    FileEntry,
    Manifest,
    b64,
    blob_size,
    check_mac,
    chunk_aad,
    chunk_count,
    file_aad_prefix,
    nonce,
    parse_manifest,
    sha256,
    suite,
    unb64,
    wrap_aad,
)
from appliance.vault.fsutil import fsync_dir, private_dir, write_all, write_atomic
from appliance.vault.keys import KeyProvider, Step
from appliance.vault.rotation import RotateReport, rotate

Progress = Callable[[int], None]
SKIPPED_DIRS = frozenset({".git", ".cache", "__pycache__"})


class VaultIntegrityError(VaultError):
    """A sealed file failed a check; names the model, the file and (if known) the chunk."""

    def __init__(self, model: str, path: str, chunk: int | None, reason: str) -> None:
        where = f"{model}: {path}" + (f" chunk {chunk}" if chunk is not None else "")
        super().__init__(f"{where}: {reason}")
        self.model, self.path, self.chunk, self.reason = model, path, chunk, reason


@dataclass
class Opened:
    """A sealed model whose manifest authenticated and whose data keys are unwrapped."""

    manifest: Manifest
    directory: Path
    data_keys: list[bytes] = field(repr=False)


def _utcnow() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def source_files(src: Path) -> list[tuple[str, Path]]:
    """Every regular file under ``src`` (sorted, "/"-separated relative paths).

    Symbolic links: a link to a file is followed when it ends, through any chain of links,
    at a regular file inside ``src`` (the file is sealed under the link's name, so the
    unsealed model holds a plain file there). A link that leads outside ``src`` (a
    ``leak.txt`` pointing at a file elsewhere), a dangling link and a link to a directory
    are refused with VaultError naming the link. ``src`` itself may be reached through a
    link: "inside" is judged against its real path. Sealing checks again, on the file it
    actually opened, that it lies inside (a file swapped for a link after this scan is
    refused too).
    """
    if not src.is_dir():
        raise InvalidRequest(f"{src} is not a directory")
    root = Path(os.path.realpath(src))
    found: list[tuple[str, Path]] = []
    for root_dir, dirs, files in os.walk(src):
        here = Path(root_dir)
        for d in list(dirs):
            if d in SKIPPED_DIRS:
                dirs.remove(d)
            elif (here / d).is_symlink():
                raise VaultError(
                    f"{here / d} is a symbolic link to a directory; refusing to follow it "
                    "(copy the directory in)"
                )
        for name in files:
            path = here / name
            if path.is_symlink():
                _check_link(path, root)
            elif not path.is_file():
                raise InvalidRequest(f"{path} is not a regular file")
            found.append((path.relative_to(src).as_posix(), path))
    return sorted(found)


def _check_link(link: Path, root: Path) -> None:
    """Raise VaultError unless the symbolic link ``link`` ends at a regular file in ``root``."""
    target = Path(os.path.realpath(link))
    if not target.is_relative_to(root):
        raise VaultError(
            f"{link} is a symbolic link to {target}, outside {root}: refusing to seal a file "
            "from outside the source directory (copy it in if it belongs to the model)"
        )
    if not target.is_file():
        raise VaultError(f"{link} is a symbolic link to {target}, which is not a regular file")


def _opened_inside(fd: int, path: Path, root: Path) -> None:
    """Raise VaultError unless the file open on ``fd`` (opened as ``path``) lies in ``root``:
    what was opened, not what the scan saw, so a swap in between is caught."""
    try:
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # no /proc: the path as it resolves now
        real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        raise VaultError(
            f"{path} changed while it was being imported: it now leads to {real}, outside "
            f"{root}; refusing to seal it"
        )


def _kind(src: Path) -> str:
    if (src / "adapter_config.json").is_file():
        return "adapter"
    return "model" if (src / "config.json").is_file() else "files"


class Vault:
    def __init__(self, root: Path, keys: KeyProvider, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.root = Path(root)
        self.keys = keys
        self.chunk_size = chunk_size

    # --- locking and listing ------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, exclusive: bool) -> Iterator[None]:
        private_dir(self.root)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and NAME_RE.match(p.name) and (p / MANIFEST_NAME).exists()
        )

    def _dir(self, name: str) -> Path:
        if not NAME_RE.match(name):
            raise InvalidRequest(
                f"invalid model name {name!r}: letters, digits, '.', '_', '-', at most 64"
            )
        return self.root / name

    def load(self, name: str) -> Manifest:
        """The manifest of ``name``, authenticated under its KEK."""
        directory = self._dir(name)
        where = f"{name}: {MANIFEST_NAME}"
        try:
            raw = (directory / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no model named {name!r} in the vault ({self.root})") from None
        manifest = parse_manifest(raw, where)
        if manifest.key_id not in self.keys.key_ids():
            raise VaultError(
                f"{where}: sealed under KEK {manifest.key_id}, which the {self.keys.name} key "
                "provider does not have (wrong KEK?)"
            )
        mac = self.keys.mac(manifest.key_id, suite(manifest.cipher), manifest.canonical())
        check_mac(manifest, mac, where)
        if manifest.name != name:
            raise VaultError(f"{where}: manifest is for model {manifest.name!r} (swapped)")
        return manifest

    def open(self, name: str) -> Opened:
        with self.lock(exclusive=False):
            manifest = self.load(name)
            s = suite(manifest.cipher)
            data_keys = []
            for entry in manifest.files:
                aad = wrap_aad(manifest.model_id_bytes, entry.path, s.name)
                try:
                    key = self.keys.unwrap(manifest.key_id, s, unb64(entry.wrapped_key), aad)
                except (VaultError, ValueError):
                    raise VaultIntegrityError(
                        name, entry.path, None, "data key does not unwrap (tampered manifest)"
                    ) from None
                data_keys.append(key)
        return Opened(manifest, self._dir(name), data_keys)

    # --- import ---------------------------------------------------------------------

    def import_dir(
        self,
        src: Path,
        name: str,
        cipher: str = "aes-256-gcm",
        progress: Progress | None = None,
        threaded: bool = True,
    ) -> Manifest:
        s = suite(cipher)
        final = self._dir(name)
        if final.exists():
            raise Conflict(f"a model named {name!r} is already in the vault")
        files = source_files(Path(src))
        root = Path(os.path.realpath(src))
        private_dir(self.root)
        staging = self.root / f".staging-{name}-{secrets.token_hex(4)}"
        private_dir(staging / BLOB_DIR)
        manifest = Manifest(
            name=name,
            model_id=secrets.token_hex(16),
            kind=_kind(Path(src)),
            cipher=s.name,
            chunk_size=self.chunk_size,
            key_id="",
            created_at=_utcnow(),
        )
        try:
            data_keys = [secrets.token_bytes(s.key_bytes) for _ in files]
            entries: list[FileEntry | None] = [None] * len(files)

            def seal(number: int, threaded_file: bool, advance: Progress) -> None:
                rel, path = files[number]
                blob = f"{BLOB_DIR}/{number:06d}.enc"
                size, digest = self._seal_file(
                    manifest,
                    rel,
                    path,
                    root,
                    staging / blob,
                    data_keys[number],
                    advance,
                    threaded and threaded_file,
                )
                entries[number] = FileEntry(rel, blob, size, digest, "")

            sizes = [path.stat().st_size for _, path in files]
            pipeline.for_each_file(sizes, seal, progress, workers=None if threaded else 1)
            manifest.files = [entry for entry in entries if entry is not None]
            fsync_dir(staging / BLOB_DIR)
            with self.lock(exclusive=False):
                key_id = self.keys.current_key_id() or self.keys.create_key()
                self._wrap_all(manifest, data_keys, key_id)
                write_atomic(staging / MANIFEST_NAME, manifest.to_json())
                try:
                    os.rename(staging, final)
                except OSError:
                    raise Conflict(f"a model named {name!r} is already in the vault") from None
                fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    def _wrap_all(self, manifest: Manifest, data_keys: list[bytes], key_id: str) -> None:
        s = suite(manifest.cipher)
        manifest.key_id = key_id
        for entry, key in zip(manifest.files, data_keys, strict=True):
            aad = wrap_aad(manifest.model_id_bytes, entry.path, s.name)
            entry.wrapped_key = b64(self.keys.wrap(key_id, s, key, aad))
        manifest.mac = self.keys.mac(key_id, s, manifest.canonical())

    def _seal_file(
        self,
        manifest: Manifest,
        rel: str,
        path: Path,
        root: Path,
        blob: Path,
        data_key: bytes,
        progress: Progress | None,
        threaded: bool,
    ) -> tuple[int, str]:
        cipher = suite(manifest.cipher).chunk_cipher(data_key)
        prefix = file_aad_prefix(manifest.model_id_bytes, rel)
        chunk = manifest.chunk_size
        digest = sha256()
        src_fd = os.open(path, os.O_RDONLY)
        try:
            _opened_inside(src_fd, path, root)
        except BaseException:
            os.close(src_fd)
            raise
        out_fd = os.open(blob, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            size = os.fstat(src_fd).st_size
            count = chunk_count(size, chunk)
            lengths = [min(chunk, size - i * chunk) for i in range(count)]
            with contextlib.suppress(OSError):
                os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

            def encrypt(index: int, data: memoryview, out: memoryview) -> int:
                n = len(data) + TAG_BYTES
                cipher.encrypt_into(
                    nonce(index), data, chunk_aad(prefix, index, index == count - 1), out[:n]
                )
                return n

            def sink(_index: int, data: memoryview, out: memoryview) -> None:
                digest.update(data)
                write_all(out_fd, out)

            try:
                pipeline.run(
                    src_fd,
                    lengths,
                    encrypt,
                    sink,
                    in_size=chunk,
                    out_size=chunk + TAG_BYTES,
                    progress=progress,
                    threaded=threaded,
                )
            except pipeline.ShortRead:
                raise VaultError(f"{path} shrank while it was being imported") from None
            if os.read(src_fd, 1):
                raise VaultError(f"{path} grew while it was being imported")
            os.fsync(out_fd)
        finally:
            os.close(src_fd)
            os.close(out_fd)
        return size, digest.hexdigest()

    # --- reading sealed files ---------------------------------------------------------

    def read_file(
        self,
        opened: Opened,
        index: int,
        sink: Callable[[memoryview], None],
        *,
        hash_check: bool,
        progress: Progress | None = None,
        threaded: bool = True,
    ) -> None:
        """Decrypt file ``index`` chunk by chunk into ``sink``, checking every tag (and,
        with ``hash_check``, the SHA-256) as it goes; raise VaultIntegrityError at the first
        chunk that fails."""
        m = opened.manifest
        entry = m.files[index]
        cipher = suite(m.cipher).chunk_cipher(opened.data_keys[index])
        prefix = file_aad_prefix(m.model_id_bytes, entry.path)
        chunk = m.chunk_size
        count = chunk_count(entry.size, chunk)
        lengths = [min(chunk, entry.size - i * chunk) + TAG_BYTES for i in range(count)]
        digest = sha256() if hash_check else None
        try:
            fd = os.open(opened.directory / entry.blob, os.O_RDONLY)
        except FileNotFoundError:
            raise VaultIntegrityError(m.name, entry.path, None, "sealed file is missing") from None
        try:
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

            def decrypt(i: int, data: memoryview, out: memoryview) -> int:
                n = len(data) - TAG_BYTES
                aad = chunk_aad(prefix, i, i == count - 1)
                try:
                    cipher.decrypt_into(nonce(i), data, aad, out[:n])
                except InvalidTag:
                    raise VaultIntegrityError(
                        m.name,
                        entry.path,
                        i,
                        f"fails authentication (chunk {i} of {count}: altered, reordered, "
                        "dropped or taken from another file)",
                    ) from None
                return n

            def consume(_i: int, _data: memoryview, out: memoryview) -> None:
                if digest is not None:
                    digest.update(out)
                sink(out)

            try:
                pipeline.run(
                    fd,
                    lengths,
                    decrypt,
                    consume,
                    in_size=chunk + TAG_BYTES,
                    out_size=chunk,
                    progress=progress,
                    threaded=threaded,
                )
            except pipeline.ShortRead as short:
                raise VaultIntegrityError(
                    m.name,
                    entry.path,
                    short.index,
                    f"truncated (chunk {short.index} of {count} is missing or incomplete)",
                ) from None
            actual = os.fstat(fd).st_size
            if actual != blob_size(entry.size, chunk):
                raise VaultIntegrityError(
                    m.name, entry.path, count, "trailing data after the final chunk"
                )
        finally:
            os.close(fd)
        if digest is not None and digest.hexdigest() != entry.sha256:
            raise VaultIntegrityError(m.name, entry.path, None, "SHA-256 does not match")

    def verify(self, name: str, progress: Progress | None = None) -> Manifest:
        """Check every tag and every SHA-256 of ``name``; no plaintext is written."""
        opened = self.open(name)

        def check(index: int, threaded: bool, advance: Progress) -> None:
            self.read_file(
                opened,
                index,
                lambda _out: None,
                hash_check=True,
                progress=advance,
                threaded=threaded,
            )

        pipeline.for_each_file([f.size for f in opened.manifest.files], check, progress)
        return opened.manifest

    # --- KEK rotation -----------------------------------------------------------------

    def rotate(self, on_step: Step | None = None) -> RotateReport:
        """Rewrap every data key under a new KEK (see ``rotation.rotate``)."""
        return rotate(self, on_step)

    def rewrap(self, manifest: Manifest, key_id: str) -> None:
        """Unwrap ``manifest``'s data keys and wrap them (and its MAC) under ``key_id``."""
        s = suite(manifest.cipher)
        keys = []
        for entry in manifest.files:
            aad = wrap_aad(manifest.model_id_bytes, entry.path, s.name)
            keys.append(self.keys.unwrap(manifest.key_id, s, unb64(entry.wrapped_key), aad))
        self._wrap_all(manifest, keys, key_id)
