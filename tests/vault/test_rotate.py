"""KEK rotation rewraps without re-encrypting; kill -9 at any step leaves every model readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.errors import VaultError
from appliance.vault.format import MANIFEST_NAME
from appliance.vault.keys import EnvKeyProvider, FileKeyProvider, key_id_of
from appliance.vault.store import Vault
from appliance.vault.unseal import unseal
from tests import timing
from tests.vault.conftest import CHUNK, tree

MODELS = ["a", "b", "c"]


@pytest.fixture()
def sealed(vault: Vault, source: Path) -> Vault:
    for name in MODELS:
        vault.import_dir(source, name, "sm4-gcm" if name == "b" else "aes-256-gcm")
    return vault


def blobs(vault: Vault) -> dict[str, bytes]:
    return {
        p.relative_to(vault.root).as_posix(): p.read_bytes()
        for p in sorted(vault.root.rglob("*.enc"))
    }


def test_rotation_rewraps_every_model_and_retires_the_old_key(
    sealed: Vault, keys: FileKeyProvider, source: Path, shm_dir: Path
) -> None:
    old = keys.current_key_id()
    before = blobs(sealed)
    steps: list[tuple[str, str]] = []
    report = sealed.rotate(on_step=lambda step, detail: steps.append((step, detail)))
    assert report.key_id != old and report.retired == [old]
    assert sorted(report.rewrapped) == MODELS
    assert keys.key_ids() == [report.key_id] and keys.current_key_id() == report.key_id
    assert blobs(sealed) == before  # no data re-encrypted
    assert [s for s, _ in steps] == [
        "key-written", "key-current", *["model-rewrapped"] * 3, "key-retired",
    ]  # fmt: skip
    for name in MODELS:
        assert sealed.verify(name).key_id == report.key_id
    unseal(sealed, "b", shm_dir / "b")
    assert tree(shm_dir / "b") == tree(source)


def test_rotation_with_env_keys(tmp_path: Path, source: Path) -> None:
    old, new = os.urandom(32).hex(), os.urandom(32).hex()
    env = {"K": old}
    vault = Vault(tmp_path / "v", EnvKeyProvider("K", env), CHUNK)
    vault.import_dir(source, "m")
    env["K"] = f"{new},{old}"  # the operator puts the new key first
    report = vault.rotate()
    assert report.key_id == key_id_of(bytes.fromhex(new)) and report.rewrapped == ["m"]
    env["K"] = new  # and drops the old one afterwards
    assert vault.verify("m").key_id == report.key_id
    assert vault.rotate().unchanged == ["m"]


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from appliance.vault.keys import FileKeyProvider
    from appliance.vault.store import Vault

    root, key_dir, target, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seen = []

    def step(name, detail):
        seen.append(name)
        if name == target and seen.count(name) == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    Vault(root, FileKeyProvider(key_dir), 4096).rotate(on_step=step)
    """
)


def rotate_and_kill(vault: Vault, keys: FileKeyProvider, step: str, nth: int) -> int:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(vault.root), str(keys.directory), step, str(nth)],
        capture_output=True,
        timeout=timing.scaled(60),
        cwd=Path(__file__).resolve().parents[2],
    )
    return child.returncode


@pytest.mark.parametrize(
    ("step", "nth"),
    [
        ("key-written", 1),  # new key on disk, not yet current
        ("key-current", 1),  # new key current, no model rewrapped
        ("model-rewrapped", 1),  # one model under the new key, two under the old
        ("model-rewrapped", 2),
        ("model-rewrapped", 3),  # all rewrapped, old key still there
    ],
)
def test_kill_9_during_rotation_leaves_every_model_readable(
    sealed: Vault, keys: FileKeyProvider, source: Path, shm_dir: Path, step: str, nth: int
) -> None:
    old = keys.current_key_id()
    assert rotate_and_kill(sealed, keys, step, nth) == -signal.SIGKILL
    under = {name: sealed.load(name).key_id for name in MODELS}
    assert old in keys.key_ids()  # nothing retired before every model moved
    assert sum(key_id != old for key_id in under.values()) == (
        nth if step.startswith("model") else 0
    )
    for name in MODELS:
        sealed.verify(name)  # every tag and hash, under whichever key it names
    # Running it again finishes the job, under yet another key.
    report = sealed.rotate()
    assert keys.key_ids() == [report.key_id] and old not in keys.key_ids()
    for name in MODELS:
        assert sealed.verify(name).key_id == report.key_id
    unseal(sealed, "a", shm_dir / "a")
    assert tree(shm_dir / "a") == tree(source)


def test_kill_9_while_retiring_old_keys(sealed: Vault, keys: FileKeyProvider, source: Path) -> None:
    sealed.rotate()  # two rotations killed before retiring leave three keys
    assert rotate_and_kill(sealed, keys, "model-rewrapped", 3) == -signal.SIGKILL
    assert rotate_and_kill(sealed, keys, "model-rewrapped", 3) == -signal.SIGKILL
    assert len(keys.key_ids()) == 3
    assert rotate_and_kill(sealed, keys, "key-retired", 1) == -signal.SIGKILL
    for name in MODELS:
        sealed.verify(name)
    sealed.rotate()
    assert len(keys.key_ids()) == 1


def test_a_stale_temporary_manifest_is_ignored(sealed: Vault) -> None:
    manifest = sealed.root / "a" / MANIFEST_NAME
    (manifest.parent / f".{MANIFEST_NAME}.tmp-dead").write_bytes(manifest.read_bytes()[:50])
    assert sealed.names() == MODELS
    sealed.rotate()
    sealed.verify("a")


def test_rotation_refuses_to_start_while_a_model_is_invalid(
    sealed: Vault, keys: FileKeyProvider
) -> None:
    manifest = sealed.root / "c" / MANIFEST_NAME
    manifest.write_bytes(manifest.read_bytes().replace(b'"kind": "model"', b'"kind": "files"'))
    before = keys.key_ids()
    with pytest.raises(VaultError, match=r"c: manifest\.json: manifest fails authentication"):
        sealed.rotate()
    assert keys.key_ids() == before  # no new key, nothing retired
