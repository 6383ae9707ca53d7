"""Seal and unseal are bit-exact, for both ciphers, whatever the sizes and chunking."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.vault.format import MANIFEST_NAME, blob_size, chunk_count, parse_manifest
from appliance.vault.keys import FileKeyProvider
from appliance.vault.store import Vault
from appliance.vault.unseal import unseal
from tests.vault.conftest import CHUNK, tree, write_random


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "sm4-gcm"])
@pytest.mark.parametrize("threaded", [True, False], ids=["pipeline", "inline"])
def test_round_trip_is_bit_exact(
    vault: Vault, source: Path, shm_dir: Path, cipher: str, threaded: bool
) -> None:
    manifest = vault.import_dir(source, "m", cipher, threaded=threaded)
    assert manifest.cipher == cipher and manifest.kind == "model"
    assert [f.path for f in manifest.files] == sorted(tree(source))
    for entry in manifest.files:
        blob = vault.root / "m" / entry.blob
        assert blob.stat().st_size == blob_size(entry.size, CHUNK)
        assert entry.sha256 == hashlib.sha256((source / entry.path).read_bytes()).hexdigest()
    unseal(vault, "m", shm_dir / "out", threaded=threaded, hash_check=True)
    assert tree(shm_dir / "out") == tree(source)
    assert vault.verify("m").name == "m"


def test_nothing_is_stored_in_clear(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "plain"
    (src).mkdir()
    secret = b"customer-secret-weights " * 400
    (src / "weights.bin").write_bytes(secret)
    vault.import_dir(src, "m")
    for path in (vault.root / "m").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"customer-secret" not in data
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((vault.root / "m").stat().st_mode) == 0o700


def test_large_file_many_chunks_round_trip(vault: Vault, tmp_path: Path, shm_dir: Path) -> None:
    src = tmp_path / "big"
    write_random(src / "weights.bin", 200 * CHUNK + 17)
    done: list[int] = []
    manifest = vault.import_dir(src, "big", progress=done.append)
    assert sum(done) == manifest.total_size == 200 * CHUNK + 17
    assert chunk_count(manifest.total_size, CHUNK) == 201
    unseal(vault, "big", shm_dir / "big")
    assert (shm_dir / "big" / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()


def test_adapter_and_plain_directories_are_recognised(vault: Vault, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    write_random(adapter / "adapter_model.safetensors", 100)
    assert vault.import_dir(adapter, "lora").kind == "adapter"
    plain = tmp_path / "plain"
    write_random(plain / "x", 10)
    assert vault.import_dir(plain, "files").kind == "files"
    assert vault.names() == ["files", "lora"]


def test_git_metadata_is_not_imported(vault: Vault, source: Path) -> None:
    write_random(source / ".git" / "objects" / "pack", 50)
    manifest = vault.import_dir(source, "m")
    assert not any(f.path.startswith(".git") for f in manifest.files)


def test_names_and_duplicates_are_checked(vault: Vault, source: Path) -> None:
    with pytest.raises(InvalidRequest, match="invalid model name"):
        vault.import_dir(source, "../escape")
    vault.import_dir(source, "m")
    with pytest.raises(Conflict, match="already in the vault"):
        vault.import_dir(source, "m")
    with pytest.raises(NotFound):
        vault.load("other")
    assert not list(vault.root.glob(".staging-*"))


def test_a_failed_import_leaves_nothing(vault: Vault, source: Path) -> None:
    calls = []

    def explode(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vault.import_dir(source, "m", progress=explode)
    assert vault.names() == []
    assert [p.name for p in vault.root.iterdir()] == [".lock"] or not any(
        p.name.startswith(".staging") for p in vault.root.iterdir()
    )


def test_manifest_records_the_format(vault: Vault, source: Path) -> None:
    vault.import_dir(source, "m", "sm4-gcm")
    raw = (vault.root / "m" / MANIFEST_NAME).read_bytes()
    data = json.loads(raw)
    assert data["format"] == "appliance-vault" and data["version"] == 1
    assert data["chunk_size"] == CHUNK and data["cipher"] == "sm4-gcm"
    assert data["key_id"].startswith("kek-")
    assert data["mac"].startswith("hmac-sm3:")
    assert parse_manifest(raw, "x").files[0].path == "config.json"


def test_sealed_models_open_with_a_second_vault_on_the_same_keys(
    vault: Vault, source: Path, tmp_path: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    again = Vault(vault.root, FileKeyProvider(tmp_path / "keys" / "vault"), chunk_size=8192)
    unseal(again, "m", shm_dir / "m")  # the manifest's chunk size wins
    assert tree(shm_dir / "m") == tree(source)
