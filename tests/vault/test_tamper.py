"""Every tampering is detected and named (model, file, chunk), by verify and by unseal."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.errors import VaultError
from appliance.vault.format import MANIFEST_NAME, TAG_BYTES
from appliance.vault.keys import EnvKeyProvider, FileKeyProvider
from appliance.vault.store import Vault, VaultIntegrityError
from appliance.vault.unseal import unseal
from tests.vault.conftest import CHUNK

TARGET = "model.safetensors"  # 3 full chunks and a 123-byte final one
CHUNKS = 4
STRIDE = CHUNK + TAG_BYTES


@pytest.fixture(params=["aes-256-gcm", "sm4-gcm"])
def sealed(request: pytest.FixtureRequest, vault: Vault, source: Path) -> Vault:
    vault.import_dir(source, "m", request.param)
    return vault


def blob(vault: Vault, path: str = TARGET, model: str = "m") -> Path:
    manifest = json.loads((vault.root / model / MANIFEST_NAME).read_bytes())
    entry = next(f for f in manifest["files"] if f["path"] == path)
    return vault.root / model / entry["blob"]


def edit_manifest(vault: Vault, change: Callable[[dict], None], model: str = "m") -> None:
    path = vault.root / model / MANIFEST_NAME
    data = json.loads(path.read_bytes())
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def both_fail(vault: Vault, out: Path, pattern: str) -> VaultError:
    """verify and unseal both refuse with a message matching ``pattern``; unseal leaves
    nothing behind."""
    with pytest.raises(VaultError) as verified:
        vault.verify("m")
    assert re.search(pattern, verified.value.message), verified.value.message
    with pytest.raises(VaultError) as unsealed:
        unseal(vault, "m", out, allow_disk=True)
    assert re.search(pattern, unsealed.value.message), unsealed.value.message
    assert not out.exists()
    return unsealed.value


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("where", ["ciphertext", "tag"])
def test_a_flipped_byte_in_any_chunk_is_named(
    sealed: Vault, tmp_path: Path, chunk: int, where: str
) -> None:
    path = blob(sealed)
    data = bytearray(path.read_bytes())
    end = min((chunk + 1) * STRIDE, len(data))
    offset = chunk * STRIDE + 7 if where == "ciphertext" else end - 3
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    err = both_fail(sealed, tmp_path / "out", rf"m: {TARGET} chunk {chunk}: fails authentication")
    assert isinstance(err, VaultIntegrityError) and (err.path, err.chunk) == (TARGET, chunk)


def test_two_swapped_chunks_are_named(sealed: Vault, tmp_path: Path) -> None:
    path = blob(sealed)
    data = path.read_bytes()
    first, second = data[0:STRIDE], data[STRIDE : 2 * STRIDE]
    path.write_bytes(second + first + data[2 * STRIDE :])
    both_fail(sealed, tmp_path / "out", rf"{TARGET} chunk 0: fails authentication")


def test_a_dropped_chunk_is_named(sealed: Vault, tmp_path: Path) -> None:
    path = blob(sealed)
    data = path.read_bytes()
    path.write_bytes(data[:STRIDE] + data[2 * STRIDE :])  # chunk 1 dropped
    both_fail(sealed, tmp_path / "out", rf"{TARGET} chunk 1: fails authentication")


def test_a_dropped_final_chunk_is_a_truncation(sealed: Vault, tmp_path: Path) -> None:
    path = blob(sealed)
    data = path.read_bytes()
    path.write_bytes(data[: 3 * STRIDE])
    both_fail(sealed, tmp_path / "out", rf"{TARGET} chunk 3: truncated")


@pytest.mark.parametrize("keep", [0, 10, STRIDE + 100, 3 * STRIDE + 5])
def test_a_truncated_file_is_named(sealed: Vault, tmp_path: Path, keep: int) -> None:
    path = blob(sealed)
    os.truncate(path, keep)
    chunk = keep // STRIDE
    both_fail(sealed, tmp_path / "out", rf"{TARGET} chunk {chunk}: truncated")


def test_trailing_data_is_detected(sealed: Vault, tmp_path: Path) -> None:
    with blob(sealed).open("ab") as f:
        f.write(b"\0" * 32)
    both_fail(sealed, tmp_path / "out", rf"{TARGET} chunk 4: trailing data")


def test_an_empty_file_cannot_be_truncated(sealed: Vault, tmp_path: Path) -> None:
    os.truncate(blob(sealed, "empty"), 0)
    both_fail(sealed, tmp_path / "out", r"m: empty chunk 0: truncated")


def test_a_missing_file_is_named(sealed: Vault, tmp_path: Path) -> None:
    blob(sealed, "one-byte").unlink()
    both_fail(sealed, tmp_path / "out", r"m: one-byte: sealed file is missing")


def test_files_swapped_between_each_other_are_detected(sealed: Vault, tmp_path: Path) -> None:
    a, b = blob(sealed, "exact.bin"), blob(sealed, TARGET)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b[: len(data_a)])
    both_fail(sealed, tmp_path / "out", r"exact.bin chunk 0: fails authentication")


def test_a_chunk_from_another_model_is_detected(
    sealed: Vault, source: Path, tmp_path: Path
) -> None:
    cipher = sealed.load("m").cipher
    sealed.import_dir(source, "other", cipher)
    ours, theirs = blob(sealed), blob(sealed, model="other")
    data = bytearray(ours.read_bytes())
    data[STRIDE : 2 * STRIDE] = theirs.read_bytes()[STRIDE : 2 * STRIDE]
    ours.write_bytes(bytes(data))
    both_fail(sealed, tmp_path / "out", rf"{TARGET} chunk 1: fails authentication")


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["files"][0].update(size=d["files"][0]["size"] + 1),
        lambda d: d["files"][0].update(sha256="0" * 64),
        lambda d: d.update(chunk_size=8192),
        lambda d: d.update(name="m2"),
        lambda d: d["files"].reverse(),
        lambda d: d["files"].pop(),
        lambda d: d["files"][1].update(blob=d["files"][2]["blob"]),
        lambda d: d.update(created_at="2020-01-01T00:00:00+00:00"),
    ],
    ids=["size", "sha256", "chunk-size", "name", "order", "file-removed", "blob", "date"],
)
def test_an_edited_manifest_is_detected(
    sealed: Vault, tmp_path: Path, change: Callable[[dict], None]
) -> None:
    edit_manifest(sealed, change)
    both_fail(sealed, tmp_path / "out", r"m: manifest.json: manifest fails authentication")


def test_an_edited_wrapped_key_is_detected(sealed: Vault, tmp_path: Path) -> None:
    def change(d: dict) -> None:
        d["files"][0]["wrapped_key"] = d["files"][1]["wrapped_key"]

    edit_manifest(sealed, change)
    both_fail(sealed, tmp_path / "out", r"manifest fails authentication")


def test_a_manifest_swapped_from_another_model_is_detected(
    sealed: Vault, source: Path, tmp_path: Path
) -> None:
    sealed.import_dir(source, "other", sealed.load("m").cipher)
    shutil.copy(sealed.root / "other" / MANIFEST_NAME, sealed.root / "m" / MANIFEST_NAME)
    both_fail(sealed, tmp_path / "out", r"m: manifest.json: manifest is for model 'other'")


def test_a_swapped_manifest_renamed_to_fit_is_detected(
    sealed: Vault, source: Path, tmp_path: Path
) -> None:
    sealed.import_dir(source, "other", sealed.load("m").cipher)
    shutil.copy(sealed.root / "other" / MANIFEST_NAME, sealed.root / "m" / MANIFEST_NAME)
    edit_manifest(sealed, lambda d: d.update(name="m"))
    both_fail(sealed, tmp_path / "out", r"manifest fails authentication")


def test_a_wrong_kek_is_refused(sealed: Vault, tmp_path: Path) -> None:
    wrong = Vault(sealed.root, EnvKeyProvider("K", {"K": os.urandom(32).hex()}), CHUNK)
    both_fail(wrong, tmp_path / "out", r"sealed under KEK kek-[0-9a-f]{16}, which the env key")


def test_a_kek_file_replaced_by_another_key_is_refused(
    sealed: Vault, keys: FileKeyProvider, tmp_path: Path
) -> None:
    (key_file,) = keys.directory.glob("*.kek")
    key_file.write_text(os.urandom(32).hex() + "\n", encoding="ascii")
    both_fail(sealed, tmp_path / "out", r"holds kek-[0-9a-f]{16}, not kek-")


def test_a_forged_manifest_under_a_forged_key_id_is_refused(sealed: Vault, tmp_path: Path) -> None:
    edit_manifest(sealed, lambda d: d.update(key_id="kek-0000000000000000"))
    both_fail(sealed, tmp_path / "out", r"sealed under KEK kek-0000000000000000")


def test_an_unknown_format_version_is_refused(sealed: Vault, tmp_path: Path) -> None:
    edit_manifest(sealed, lambda d: d.update(version=2))
    both_fail(sealed, tmp_path / "out", r"format version 2 is not supported")


def test_a_malformed_manifest_is_refused(sealed: Vault, tmp_path: Path) -> None:
    (sealed.root / "m" / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    both_fail(sealed, tmp_path / "out", r"manifest is malformed")


def test_verify_checks_every_hash(sealed: Vault, tmp_path: Path) -> None:
    """A manifest re-authenticated by someone holding the KEK still cannot lie about a
    file's content: verify recomputes every SHA-256."""
    manifest = sealed.load("m")
    manifest.files[0].sha256 = "0" * 64
    sealed._wrap_all(manifest, [k for k in sealed.open("m").data_keys], manifest.key_id)
    (sealed.root / "m" / MANIFEST_NAME).write_bytes(manifest.to_json())
    with pytest.raises(VaultError, match=r"m: config.json: SHA-256 does not match"):
        sealed.verify("m")
    with pytest.raises(VaultError, match=r"SHA-256 does not match"):
        unseal(sealed, "m", tmp_path / "out", allow_disk=True, hash_check=True)
    assert not (tmp_path / "out").exists()
