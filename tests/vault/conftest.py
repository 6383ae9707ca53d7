"""Vault fixtures: a file key provider and a vault in tmp dirs, small chunks, tmpfs dirs."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.vault.keys import FileKeyProvider
from appliance.vault.store import Vault

CHUNK = 4096
SHM = Path("/dev/shm")


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


@pytest.fixture()
def keys(tmp_path: Path) -> FileKeyProvider:
    return FileKeyProvider(tmp_path / "keys" / "vault")


@pytest.fixture()
def vault(tmp_path: Path, keys: FileKeyProvider) -> Vault:
    return Vault(tmp_path / "vault", keys, chunk_size=CHUNK)


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A model-shaped directory: chunk-boundary sizes, an empty file, a subdirectory."""
    src = tmp_path / "src"
    write_random(src / "model.safetensors", 3 * CHUNK + 123)
    write_random(src / "exact.bin", 2 * CHUNK)
    write_random(src / "one-byte", 1)
    (src / "empty").write_bytes(b"")
    (src / "config.json").write_text('{"model_type": "llama"}\n', encoding="utf-8")
    write_random(src / "sub" / "dir" / "tokenizer.bin", CHUNK - 1)
    return src


@pytest.fixture()
def shm_dir() -> Iterator[Path]:
    """A fresh directory on tmpfs, removed afterwards."""
    if not SHM.is_dir():
        pytest.skip("no /dev/shm")
    path = SHM / f"pytest-vault-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the unseal marker, by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".appliance-unsealed"
    }


@pytest.fixture(scope="session")
def vault_initialised_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An appliance home after `appliance init` (SQLite), made once per session."""
    from tests.vault.test_vault_cli import ok, vault_cli

    home = tmp_path_factory.mktemp("vault-template") / "home"
    ok(vault_cli(home, "init"))
    return home


@pytest.fixture()
def home(vault_initialised_home: Path, tmp_path: Path) -> Path:
    """A private copy of an initialised home (initialising each time would dominate)."""
    home = tmp_path / "home"
    shutil.copytree(vault_initialised_home, home)
    return home
