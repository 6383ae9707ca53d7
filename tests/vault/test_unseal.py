"""Unseal writes only to tmpfs (unless told), privately, all or nothing; wipe removes it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from appliance.errors import InvalidRequest, VaultError
from appliance.vault.fsutil import fs_type
from appliance.vault.store import Vault
from appliance.vault.unseal import MARKER, sweep_stale, unseal, unsealed, wipe
from tests.vault.conftest import CHUNK, tree

MOUNTINFO = """\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:21 / /dev/shm rw,nosuid,nodev shared:2 - tmpfs tmpfs rw
26 22 0:22 / /srv/my\\040models rw shared:3 - tmpfs tmpfs rw,size=1g
27 26 252:2 / /srv/my\\040models/disk rw shared:4 - xfs /dev/vdb rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/dev/shm/x/y", "tmpfs"),
        ("/dev/shmx", "ext4"),
        ("/srv/my models/a", "tmpfs"),
        ("/srv/my models/disk/a", "xfs"),
        ("/var/lib/appliance", "ext4"),
    ],
)
def test_fs_type_reads_mountinfo(path: str, expected: str) -> None:
    assert fs_type(Path(path), MOUNTINFO) == expected


def test_unseal_refuses_a_disk_directory(vault: Vault, source: Path, tmp_path: Path) -> None:
    vault.import_dir(source, "m")
    out = tmp_path / "out"
    with pytest.raises(VaultError, match=r"out is on \w+, not tmpfs.*--allow-disk"):
        unseal(vault, "m", out)
    assert not out.exists()
    unseal(vault, "m", out, allow_disk=True)
    assert tree(out) == tree(source)


def test_unsealed_files_are_private(vault: Vault, source: Path, shm_dir: Path) -> None:
    vault.import_dir(source, "m")
    os.umask(0o022)  # not relied upon
    out = shm_dir / "new" / "nested" / "m"
    unseal(vault, "m", out)
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    for parent in (shm_dir / "new", shm_dir / "new" / "nested"):
        assert stat.S_IMODE(parent.stat().st_mode) == 0o700
    assert json.loads((out / MARKER).read_text(encoding="utf-8"))["model"] == "m"


def corrupt_last_file(vault: Vault) -> str:
    manifest = vault.load("m")
    last = manifest.files[-1]
    blob = vault.root / "m" / last.blob
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    return last.path


def test_a_failed_unseal_removes_everything_it_created(
    vault: Vault, source: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    bad = corrupt_last_file(vault)
    out = shm_dir / "a" / "b"
    with pytest.raises(VaultError, match=rf"m: {bad} chunk 0: fails authentication"):
        unseal(vault, "m", out)
    assert list(shm_dir.iterdir()) == []  # a/ and a/b/ were made by unseal: both gone


def test_a_failed_unseal_empties_a_directory_it_was_given(
    vault: Vault, source: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    corrupt_last_file(vault)
    with pytest.raises(VaultError):
        unseal(vault, "m", shm_dir)
    assert shm_dir.is_dir() and list(shm_dir.iterdir()) == []


def test_an_interrupted_unseal_cleans_up(vault: Vault, source: Path, shm_dir: Path) -> None:
    vault.import_dir(source, "m")
    calls: list[int] = []

    def interrupt(n: int) -> None:
        calls.append(n)
        if len(calls) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        unseal(vault, "m", shm_dir / "m", progress=interrupt)
    assert not (shm_dir / "m").exists()


def test_unseal_refuses_a_non_empty_directory(vault: Vault, source: Path, shm_dir: Path) -> None:
    vault.import_dir(source, "m")
    (shm_dir / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="is not empty"):
        unseal(vault, "m", shm_dir)
    assert (shm_dir / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_a_bad_manifest_writes_nothing(vault: Vault, source: Path, shm_dir: Path) -> None:
    vault.import_dir(source, "m")
    manifest = vault.root / "m" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"m"', b'"x"', 1))
    with pytest.raises(VaultError):
        unseal(vault, "m", shm_dir / "m")
    assert not (shm_dir / "m").exists()


def test_wipe_removes_an_unsealed_directory_and_is_idempotent(
    vault: Vault, source: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    unseal(vault, "m", shm_dir / "m")
    report = wipe(shm_dir / "m")
    assert report is not None and report.files == len(tree(source)) + 1
    assert not report.overwritten  # tmpfs: pages go back to the kernel
    assert not (shm_dir / "m").exists()
    assert wipe(shm_dir / "m") is None


def test_wipe_overwrites_files_on_a_disk(vault: Vault, source: Path, tmp_path: Path) -> None:
    vault.import_dir(source, "m")
    unseal(vault, "m", tmp_path / "m", allow_disk=True)
    report = wipe(tmp_path / "m")
    assert report is not None and report.overwritten and not (tmp_path / "m").exists()


def test_wipe_refuses_a_directory_unseal_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data").write_text("x", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="holds no unsealed model"):
        wipe(precious)
    assert (precious / "data").exists()
    with pytest.raises(InvalidRequest, match="is not a directory"):
        wipe(precious / "data")


def test_unsealed_block_wipes_on_exit_and_on_error(
    vault: Vault, source: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    with unsealed(vault, "m", shm_dir) as directory:
        assert directory.parent == shm_dir and tree(directory) == tree(source)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not directory.exists()
    with pytest.raises(RuntimeError), unsealed(vault, "m", shm_dir) as directory:
        raise RuntimeError("server crashed")
    assert not directory.exists()
    assert list(shm_dir.iterdir()) == []


def test_unsealed_refuses_a_disk_root(vault: Vault, source: Path, tmp_path: Path) -> None:
    vault.import_dir(source, "m")
    with pytest.raises(VaultError, match="not tmpfs"), unsealed(vault, "m", tmp_path):
        pass


def _serve_and_fork(vault: Vault, shm_dir: Path, source: Path) -> Path:
    with unsealed(vault, "m", shm_dir) as directory:
        pid = os.fork()
        if pid == 0:
            raise SystemExit(0)  # a server worker leaving through the same stack
        os.waitpid(pid, 0)
        assert tree(directory) == tree(source)  # the child did not wipe
    return directory


def test_a_forked_child_leaving_the_block_does_not_wipe(
    vault: Vault, source: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    parent = os.getpid()
    try:
        directory = _serve_and_fork(vault, shm_dir, source)
    except SystemExit:
        if os.getpid() != parent:
            os._exit(0)
        raise
    assert not directory.exists()


def test_stale_directories_of_dead_processes_are_swept(
    vault: Vault, source: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    unseal(vault, "m", shm_dir / "appliance-vault-dead")
    marker = shm_dir / "appliance-vault-dead" / MARKER
    data = json.loads(marker.read_text(encoding="utf-8"))
    marker.write_text(json.dumps({**data, "pid": 2**22 + 1}), encoding="utf-8")
    unseal(vault, "m", shm_dir / "appliance-vault-alive")  # this process: alive
    assert sweep_stale(shm_dir, "appliance-vault-") == [shm_dir / "appliance-vault-dead"]
    assert (shm_dir / "appliance-vault-alive").exists()


def test_chunk_size_in_tests_is_small() -> None:
    assert CHUNK == 4096
