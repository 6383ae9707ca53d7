"""Unseal a model into memory-backed storage, and wipe it again.

Unsealing writes into a directory on tmpfs (refusing a disk unless told, and a destination
that is a symbolic link), files 0600 and directories 0700, checking every chunk as it goes;
on any failure, interruption included, it removes everything it wrote. A marker file says
a directory holds unsealed weights, so ``wipe`` never deletes a directory that unsealing
did not make.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InvalidRequest, VaultError
from appliance.vault import pipeline
from appliance.vault.fsutil import fs_type, on_memory_fs, private_dir, write_all
from appliance.vault.store import Manifest, Progress, Vault

MARKER = ".appliance-unsealed"
WIPE_BLOCK = 4 * 1024 * 1024


@dataclass
class WipeReport:
    directory: Path
    files: int
    bytes: int
    overwritten: bool  # on a disk, contents were overwritten with zeros before unlinking


def refuse_disk(dest: Path) -> None:
    """Raise unless ``dest`` is (or would be created) on tmpfs or ramfs."""
    if not on_memory_fs(dest):
        raise VaultError(
            f"{dest} is on {fs_type(dest)}, not tmpfs: decrypted weights must stay in "
            "memory-backed storage (use a directory under /dev/shm, or pass --allow-disk)"
        )


def refuse_symlink(dest: Path) -> None:
    """Raise VaultError if ``dest`` itself is a symbolic link (dangling or not): unsealing
    never writes into a link's target. Links among its parents are resolved like any path
    (the tmpfs check looks at where they lead)."""
    dest = Path(dest).absolute()
    if dest.is_symlink():
        try:
            to = os.readlink(dest)
        except OSError:  # gone since: still refused
            to = "?"
        raise VaultError(
            f"{dest} is a symbolic link (to {to}); refusing to unseal into its target: "
            "give the real directory"
        )


def _prepare(dest: Path) -> Path | None:
    """Create ``dest`` (0700); return the topmost directory created, to remove on failure."""
    if dest.exists():
        if not dest.is_dir():
            raise InvalidRequest(f"{dest} exists and is not a directory")
        if any(dest.iterdir()):
            raise InvalidRequest(
                f"{dest} is not empty; wipe it first (`appliance vault wipe {dest}`)"
            )
        os.chmod(dest, 0o700)
        return None
    top = dest
    while not top.parent.exists():
        top = top.parent
    private_dir(dest)
    return top


def _clean(dest: Path, created: Path | None) -> None:
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    elif dest.is_dir():
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def unseal(
    vault: Vault,
    name: str,
    dest: Path,
    *,
    allow_disk: bool = False,
    hash_check: bool = False,
    progress: Progress | None = None,
    threaded: bool = True,
) -> Manifest:
    dest = Path(dest).absolute()
    refuse_symlink(dest)
    if not allow_disk:
        refuse_disk(dest)
    opened = vault.open(name)  # manifest and keys checked before anything is written
    created = _prepare(dest)
    try:
        marker = {"model": name, "model_id": opened.manifest.model_id, "pid": os.getpid()}
        _write_new(dest / MARKER, json.dumps(marker).encode())
        targets = []
        for entry in opened.manifest.files:
            target = dest.joinpath(*entry.path.split("/"))
            if target.parent != dest:
                private_dir(target.parent)
            targets.append(target)

        def write_file(index: int, threaded_file: bool, advance: Progress) -> None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(targets[index], flags, 0o600)
            try:
                os.fchmod(fd, 0o600)
                vault.read_file(
                    opened,
                    index,
                    functools.partial(write_all, fd),
                    hash_check=hash_check,
                    progress=advance,
                    threaded=threaded and threaded_file,
                )
            finally:
                os.close(fd)

        sizes = [entry.size for entry in opened.manifest.files]
        pipeline.for_each_file(sizes, write_file, progress, workers=None if threaded else 1)
    except BaseException:
        _clean(dest, created)
        raise
    return opened.manifest


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def is_unsealed_dir(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def wipe(directory: Path) -> WipeReport | None:
    """Remove an unsealed model directory; None if there is nothing there.

    On tmpfs, unlinking returns the pages to the kernel, which zeroes them before any
    reuse. On a disk (``--allow-disk``) every file is first overwritten with zeros and
    synced (best effort: SSDs and copy-on-write file systems may keep old blocks).
    """
    directory = Path(directory).absolute()
    if not directory.exists():
        return None
    if not directory.is_dir() or directory.is_symlink():
        raise InvalidRequest(f"{directory} is not a directory")
    if any(directory.iterdir()) and not is_unsealed_dir(directory):
        raise InvalidRequest(
            f"{directory} holds no unsealed model (no {MARKER} file); refusing to delete it"
        )
    overwrite = not on_memory_fs(directory)
    files = size = 0
    for root, _dirs, names in os.walk(directory):
        for entry in names:
            path = Path(root) / entry
            if path.is_symlink() or not path.is_file():
                continue
            files += 1
            size += path.stat().st_size
            if overwrite:
                _zero(path)
    shutil.rmtree(directory)
    return WipeReport(directory, files, size, overwrite)


def _zero(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        remaining = os.fstat(fd).st_size
        zeros = bytes(min(WIPE_BLOCK, remaining))
        while remaining > 0:
            n = os.write(fd, zeros[: min(len(zeros), remaining)])
            remaining -= n
        os.fsync(fd)
    finally:
        os.close(fd)


def _owner_alive(directory: Path) -> bool:
    try:
        pid = int(json.loads((directory / MARKER).read_text(encoding="utf-8"))["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def sweep_stale(root: Path, prefix: str) -> list[Path]:
    """Wipe ``root/prefix*`` directories whose unsealing process is gone (killed -9)."""
    wiped = []
    for candidate in sorted(Path(root).glob(f"{prefix}*")):
        if candidate.is_dir() and is_unsealed_dir(candidate) and not _owner_alive(candidate):
            with contextlib.suppress(OSError, InvalidRequest):
                wipe(candidate)
                wiped.append(candidate)
    return wiped


SESSION_PREFIX = "appliance-vault-"


@contextlib.contextmanager
def unsealed(
    vault: Vault, name: str, tmpfs_root: Path, progress: Progress | None = None
) -> Iterator[Path]:
    """A private tmpfs directory holding ``name`` for the life of the block, then wiped.

    Only the process that unsealed wipes (a forked server worker leaving the block does
    not), and SIGTERM is turned into a normal exit so the wipe runs.
    """
    refuse_disk(tmpfs_root)
    sweep_stale(tmpfs_root, SESSION_PREFIX)
    directory = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=tmpfs_root))
    owner = os.getpid()
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_term)
    try:
        unseal(vault, name, directory, progress=progress)
        yield directory
    finally:
        if os.getpid() == owner:
            if previous == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, previous)
            wipe(directory)


def _exit_on_term(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
