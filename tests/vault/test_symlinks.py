"""Symbolic links: an import never seals a file from outside its source directory, and an
unseal never writes through a symbolic link given as its destination. Both are refused
with a VaultError naming the path (``error: ...`` and exit 1 on the command line), before
anything is written. Links that stay inside the source directory are followed (the file
is sealed under the link's name).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from appliance.errors import VaultError
from appliance.vault import store as store_module
from appliance.vault.store import Vault, source_files
from appliance.vault.unseal import unseal
from tests.vault.conftest import tree
from tests.vault.test_vault_cli import events, ok, vault_cli

SECRET = b"root:x:0:0:the file outside\n"


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    return secret


def nothing_sealed(vault: Vault) -> None:
    assert vault.names() == []
    leftovers = [p.name for p in vault.root.iterdir()] if vault.root.exists() else []
    assert [name for name in leftovers if name != ".lock"] == []


# Import ---------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_import_refuses_a_file_link_to_outside(
    vault: Vault, source: Path, outside: Path, relative: bool
) -> None:
    link = source / "leak.txt"
    link.symlink_to(os.path.relpath(outside, source) if relative else outside)
    with pytest.raises(VaultError, match=r"leak\.txt") as refused:
        vault.import_dir(source, "m")
    assert str(link) in refused.value.message and "outside" in refused.value.message
    assert "\n" not in refused.value.message
    nothing_sealed(vault)


def test_a_link_deep_inside_or_a_chain_of_links_is_judged_by_where_it_ends(
    vault: Vault, source: Path, outside: Path
) -> None:
    deep = source / "sub" / "dir" / "leak.bin"
    deep.symlink_to(Path("..", "..", "..", "outside", "secret.txt"))
    with pytest.raises(VaultError, match=re.escape(str(deep))):
        source_files(source)
    deep.unlink()
    hop = source / "hop"
    hop.symlink_to(outside)
    (source / "innocent").symlink_to("hop")  # inside, to a link that leaves
    with pytest.raises(VaultError, match=r"outside"):
        vault.import_dir(source, "m")
    nothing_sealed(vault)


def test_a_dangling_link_and_a_directory_link_are_refused(vault: Vault, source: Path) -> None:
    (source / "gone").symlink_to(source / "nowhere")
    with pytest.raises(VaultError, match=re.escape(str(source / "gone"))):
        vault.import_dir(source, "m")
    (source / "gone").unlink()
    (source / "dirlink").symlink_to(source / "sub")
    with pytest.raises(VaultError, match=re.escape(f"{source / 'dirlink'} is a symbolic link")):
        vault.import_dir(source, "m")
    nothing_sealed(vault)


def test_a_link_inside_the_source_is_followed(vault: Vault, source: Path, shm_dir: Path) -> None:
    (source / "alias.safetensors").symlink_to("model.safetensors")
    (source / "sub" / "up.json").symlink_to(Path("..", "config.json"))
    manifest = vault.import_dir(source, "m")
    assert {"alias.safetensors", "sub/up.json"} <= {f.path for f in manifest.files}
    unseal(vault, "m", shm_dir / "m")
    out = tree(shm_dir / "m")
    assert out["alias.safetensors"] == (source / "model.safetensors").read_bytes()
    assert out["sub/up.json"] == (source / "config.json").read_bytes()
    assert not any(p.is_symlink() for p in (shm_dir / "m").rglob("*"))


def test_a_source_reached_through_a_link_is_fine(
    vault: Vault, source: Path, tmp_path: Path
) -> None:
    (tmp_path / "via").symlink_to(source)
    (source / "alias").symlink_to(source / "config.json")  # absolute, inside the real source
    manifest = vault.import_dir(tmp_path / "via", "m")
    assert "alias" in {f.path for f in manifest.files}


def test_a_file_swapped_for_a_link_after_the_scan_is_refused(
    vault: Vault, source: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned = store_module.source_files

    def scan_then_swap(src: Path) -> list[tuple[str, Path]]:
        found = scanned(src)
        (source / "config.json").unlink()
        (source / "config.json").symlink_to(outside)
        return found

    monkeypatch.setattr(store_module, "source_files", scan_then_swap)
    with pytest.raises(VaultError, match=re.escape(str(source / "config.json"))):
        vault.import_dir(source, "m")
    nothing_sealed(vault)


# Unseal ---------------------------------------------------------------------------------


def test_unseal_refuses_a_destination_that_is_a_link(
    vault: Vault, source: Path, shm_dir: Path
) -> None:
    vault.import_dir(source, "m")
    real = shm_dir / "real"
    real.mkdir()
    link = shm_dir / "link"
    link.symlink_to(real)
    with pytest.raises(VaultError, match=re.escape(f"{link} is a symbolic link")) as refused:
        unseal(vault, "m", link)
    assert str(real) in refused.value.message
    assert list(real.iterdir()) == [] and link.is_symlink()
    dangling = shm_dir / "dangling"
    dangling.symlink_to(shm_dir / "would-be")
    with pytest.raises(VaultError, match=re.escape(f"{dangling} is a symbolic link")):
        unseal(vault, "m", dangling, allow_disk=True)
    assert not (shm_dir / "would-be").exists()
    assert sorted(p.name for p in shm_dir.iterdir()) == ["dangling", "link", "real"]


# The command line -----------------------------------------------------------------------


@pytest.mark.slow
def test_cli_import_refuses_a_link_to_outside(home: Path, source: Path, outside: Path) -> None:
    (source / "leak.txt").symlink_to(outside)
    refused = vault_cli(home, "vault", "import", str(source), "--name", "m")
    assert refused.returncode == 1, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(source / "leak.txt") in line and "outside" in line
    assert ok(vault_cli(home, "vault", "list")) == ""
    assert not (home / "vault" / "m").exists()
    assert [p.name for p in (home / "vault").glob(".staging-*")] == []
    assert SECRET not in b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


@pytest.mark.slow
def test_cli_unseal_refuses_a_link_as_destination(
    home: Path, source: Path, shm_dir: Path, tmp_path: Path
) -> None:
    ok(vault_cli(home, "vault", "import", str(source), "--name", "m"))
    for real in (shm_dir / "real", tmp_path / "on-disk"):  # tmpfs or not: the link is named
        real.mkdir()
        link = shm_dir / f"to-{real.name}"
        link.symlink_to(real)
        refused = vault_cli(home, "vault", "unseal", "m", "--to", str(link))
        assert refused.returncode == 1, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: {link} is a symbolic link"), line
        assert list(real.iterdir()) == []
    failures = [e for e in events(home, "admin.vault.unseal") if e.outcome == "failure"]
    assert len(failures) == 2 and "symbolic link" in (failures[0].details or {})["reason"]
    assert tree(shm_dir) == {}
