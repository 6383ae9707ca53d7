"""Key providers: private key files only, env keys, key ids, the provider contract."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.config import load_settings
from appliance.errors import ConfigError, VaultError
from appliance.vault.format import SUITES
from appliance.vault.keys import EnvKeyProvider, FileKeyProvider, build_provider, key_id_of
from appliance.vault.store import Vault
from tests.vault.conftest import CHUNK


def test_key_ids_are_fingerprints_not_keys() -> None:
    kek = os.urandom(32)
    key_id = key_id_of(kek)
    assert key_id == key_id_of(kek) and key_id.startswith("kek-") and len(key_id) == 20
    assert kek.hex()[:16] not in key_id
    assert key_id_of(os.urandom(32)) != key_id


def test_file_provider_creates_private_keys(keys: FileKeyProvider) -> None:
    assert keys.current_key_id() is None and keys.key_ids() == []
    key_id = keys.create_key()
    assert keys.current_key_id() == key_id and keys.key_ids() == [key_id]
    assert (keys.directory.stat().st_mode & 0o777) == 0o700
    for path in keys.directory.iterdir():
        assert (path.stat().st_mode & 0o777) == 0o600, path


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o601])
def test_file_provider_refuses_a_key_file_others_can_read(keys: FileKeyProvider, mode: int) -> None:
    key_id = keys.create_key()
    os.chmod(keys.directory / f"{key_id}.kek", mode)
    with pytest.raises(VaultError, match=rf"accessible by group or others \(mode 0{mode:o}\)"):
        keys.key_ids()
    with pytest.raises(VaultError, match="chmod 600"):
        keys.current_key_id()


def test_vault_operations_refuse_a_readable_key_file(
    vault: Vault, keys: FileKeyProvider, source: Path, tmp_path: Path
) -> None:
    vault.import_dir(source, "m")
    (key_file,) = keys.directory.glob("*.kek")
    os.chmod(key_file, 0o644)
    with pytest.raises(VaultError, match="accessible by group or others"):
        vault.verify("m")
    with pytest.raises(VaultError, match="accessible by group or others"):
        vault.import_dir(source, "m2")
    assert vault.names() == ["m"]


def test_file_provider_refuses_malformed_keys(keys: FileKeyProvider) -> None:
    keys.directory.mkdir(parents=True, mode=0o700)
    bad = keys.directory / "kek-0000000000000000.kek"
    bad.write_text("not hex\n", encoding="ascii")
    os.chmod(bad, 0o600)
    with pytest.raises(VaultError, match="is malformed"):
        keys.key_ids()


def test_env_provider_reads_keys_current_first() -> None:
    new, old = os.urandom(32), os.urandom(32)
    provider = EnvKeyProvider("KEKS", {"KEKS": f"{new.hex()}, {old.hex()}"})
    assert provider.current_key_id() == key_id_of(new)
    assert provider.key_ids() == sorted([key_id_of(new), key_id_of(old)])
    assert provider.create_key() == key_id_of(new)  # the operator made the new key
    assert provider.retire_keys(key_id_of(new)) == []
    with pytest.raises(VaultError, match="holds no KEK"):
        EnvKeyProvider("KEKS", {}).create_key()
    with pytest.raises(VaultError, match="environment variable KEKS is malformed"):
        EnvKeyProvider("KEKS", {"KEKS": "abcd"}).key_ids()


@pytest.mark.parametrize("suite_name", sorted(SUITES))
def test_wrapping_binds_the_associated_data(keys: FileKeyProvider, suite_name: str) -> None:
    s = SUITES[suite_name]
    key_id = keys.create_key()
    data_key = os.urandom(s.key_bytes)
    wrapped = keys.wrap(key_id, s, data_key, b"model-a/file")
    assert keys.unwrap(key_id, s, wrapped, b"model-a/file") == data_key
    assert data_key not in wrapped
    with pytest.raises(VaultError, match="does not unwrap"):
        keys.unwrap(key_id, s, wrapped, b"model-b/file")
    assert keys.mac(key_id, s, b"x") != keys.mac(key_id, s, b"y")
    assert keys.mac(key_id, s, b"x").startswith(f"hmac-{s.hash_name}:")


def test_the_kek_never_appears_in_the_vault(
    vault: Vault, keys: FileKeyProvider, source: Path
) -> None:
    vault.import_dir(source, "m")
    (key_file,) = keys.directory.glob("*.kek")
    kek_hex = key_file.read_text(encoding="ascii").strip()
    for path in vault.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert kek_hex.encode() not in data and bytes.fromhex(kek_hex) not in data


def test_settings_choose_the_provider(tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path))
    provider = build_provider(settings)
    assert isinstance(provider, FileKeyProvider)
    assert provider.directory == tmp_path / "keys" / "vault"
    assert settings.effective_vault_dir == tmp_path / "vault"
    env = build_provider(load_settings(home=str(tmp_path), vault_key_provider="env"))
    assert isinstance(env, EnvKeyProvider) and env.variable == "MODEL_VAULT_KEK"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("vault_key_provider", "hsm", "vault_key_provider"),
        ("vault_kek_env", "APPLIANCE_KEK", "must not start with APPLIANCE_"),
        ("vault_kek_env", "1-bad", "must be an environment variable name"),
        ("vault_chunk_size", 1000, "vault_chunk_size"),
        ("vault_chunk_size", 4097, "multiple of 4096"),
    ],
)
def test_vault_settings_are_validated(
    tmp_path: Path, setting: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(home=str(tmp_path), **{setting: value})


def test_a_vault_on_env_keys_round_trips(tmp_path: Path, source: Path) -> None:
    env = {"K": os.urandom(32).hex()}
    vault = Vault(tmp_path / "v", EnvKeyProvider("K", env), CHUNK)
    vault.import_dir(source, "m")
    assert vault.verify("m").key_id == key_id_of(bytes.fromhex(env["K"]))


def test_the_transit_sketch_implements_the_provider_interface() -> None:
    """Not run against a live HashiCorp Vault (none here); it must type-check as one."""
    from appliance.vault.keys import KeyProvider
    from appliance.vault.transit import TransitKeyProvider

    provider: KeyProvider = TransitKeyProvider("http://127.0.0.1:1", "token", "models")
    assert provider.name == "transit"
    with pytest.raises(VaultError, match="cannot wrap sm4-gcm"):
        provider.wrap("transit:models:v1", SUITES["sm4-gcm"], b"k" * 16, b"")
