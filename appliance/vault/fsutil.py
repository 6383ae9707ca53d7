"""File-system helpers of the vault: durable atomic writes and file-system types."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MEMORY_FS_TYPES = frozenset({"tmpfs", "ramfs"})


def private_dir(path: Path) -> Path:
    """``path`` and any parents it needs, created 0700 whatever the umask."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, 0o700)
    return path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: readers see the old or the new file, never a mix,
    and the new one has reached the disk when this returns."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_full(fd: int, view: memoryview) -> int:
    """Fill ``view`` from ``fd``; fewer bytes only at end of file."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            break
        got += n
    return got


def _unescape(field: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def fs_type(path: Path, mountinfo: str | None = None) -> str:
    """The file-system type ``path`` is (or would be created) on, e.g. ``tmpfs``, ``ext4``."""
    target, rest = Path(path).absolute(), Path()
    while not target.exists() and target != target.parent:
        target, rest = target.parent, Path(target.name) / rest
    real = os.path.normpath(os.path.join(os.path.realpath(target), rest))
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
        except OSError:
            return "unknown"
    best, best_type = "", "unknown"
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount_point = _unescape(fields[4])
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):  # later mounts shadow earlier ones
            best, best_type = mount_point, right.split()[0]
    return best_type


def on_memory_fs(path: Path) -> bool:
    return fs_type(path) in MEMORY_FS_TYPES
