"""The `appliance vault` contract, run as an operator runs it (a subprocess per call)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from appliance.db import Database
from appliance.models import AuditEvent
from tests import timing
from tests.conftest import make_settings
from tests.vault.conftest import CHUNK, tree, write_random

pytestmark = pytest.mark.slow


def vault_cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    full_env.update(
        {"APPLIANCE_HOME": str(home), "APPLIANCE_VAULT_CHUNK_SIZE": str(CHUNK), **(env or {})}
    )
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timing.scaled(120),
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def events(home: Path, action: str) -> list[AuditEvent]:
    database = Database(make_settings(home))
    try:
        with database.session() as session:
            found = list(
                session.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
                )
            )
            session.expunge_all()
            return found
    finally:
        database.dispose()


def details(event: AuditEvent) -> dict[str, Any]:
    return dict(event.details or {})


def test_import_list_verify_unseal_wipe_rotate(home: Path, source: Path, shm_dir: Path) -> None:
    out = ok(vault_cli(home, "vault", "import", str(source), "--name", "tiny"))
    assert out.startswith("sealed tiny (model, 6 files") and "aes-256-gcm" in out
    ok(vault_cli(home, "vault", "import", str(source), "--name", "tiny-sm", "--cipher", "sm4-gcm"))
    listing = ok(vault_cli(home, "vault", "list")).splitlines()
    assert [line.split("\t")[:3] for line in listing] == [
        ["tiny", "model", "aes-256-gcm"],
        ["tiny-sm", "model", "sm4-gcm"],
    ]
    assert ok(vault_cli(home, "vault", "verify", "tiny-sm")).startswith("tiny-sm: OK")
    target = shm_dir / "tiny"
    ok(vault_cli(home, "vault", "unseal", "tiny-sm", "--to", str(target)))
    assert tree(target) == tree(source)
    assert all(
        stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600)
        for p in [target, *target.rglob("*")]
    )
    assert ok(vault_cli(home, "vault", "wipe", str(target))).startswith(f"wiped {target}")
    assert not target.exists()
    assert "nothing to wipe" in ok(vault_cli(home, "vault", "wipe", str(target)))
    rotated = ok(vault_cli(home, "vault", "rotate-kek"))
    assert "2 models rewrapped" in rotated
    ok(vault_cli(home, "vault", "verify", "tiny"))

    (imported, _) = events(home, "admin.vault.import")
    assert imported.target == "tiny" and imported.outcome == "success"
    assert details(imported)["cipher"] == "aes-256-gcm" and details(imported)["files"] == 6
    (unsealed,) = events(home, "admin.vault.unseal")
    assert unsealed.target == "tiny-sm" and details(unsealed)["to"] == str(target)
    assert len(events(home, "admin.vault.verify")) == 2
    (wiped,) = events(home, "admin.vault.wipe")
    assert wiped.target == str(target)
    (rotation,) = events(home, "admin.vault.rotate")
    assert sorted(details(rotation)["rewrapped"]) == ["tiny", "tiny-sm"]
    kek = next((home / "keys" / "vault").glob("*.kek")).read_text(encoding="ascii").strip()
    assert kek.encode() not in (home / "appliance.db").read_bytes()


def test_tampering_fails_verify_and_unseal_naming_file_and_chunk(
    home: Path, source: Path, shm_dir: Path
) -> None:
    ok(vault_cli(home, "vault", "import", str(source), "--name", "m"))
    blob = next(
        p for p in (home / "vault" / "m" / "blobs").iterdir() if p.stat().st_size > 3 * CHUNK
    )
    data = bytearray(blob.read_bytes())
    data[2 * (CHUNK + 16) + 5] ^= 0x40
    blob.write_bytes(bytes(data))

    verify = vault_cli(home, "vault", "verify", "m")
    assert verify.returncode == 1
    assert "error: m: model.safetensors chunk 2: fails authentication" in verify.stderr
    target = shm_dir / "m"
    unseal = vault_cli(home, "vault", "unseal", "m", "--to", str(target))
    assert unseal.returncode == 1
    assert "error: m: model.safetensors chunk 2: fails authentication" in unseal.stderr
    assert not target.exists()
    assert list(shm_dir.iterdir()) == []

    failed = events(home, "admin.vault.verify.failed")
    assert [(e.outcome, details(e)["file"], details(e)["chunk"]) for e in failed] == [
        ("failure", "model.safetensors", 2),
        ("failure", "model.safetensors", 2),
    ]
    (refused,) = events(home, "admin.vault.unseal")
    assert refused.outcome == "failure" and "chunk 2" in details(refused)["reason"]


def test_unseal_refuses_a_disk_unless_allowed(home: Path, source: Path, tmp_path: Path) -> None:
    ok(vault_cli(home, "vault", "import", str(source), "--name", "m"))
    target = tmp_path / "on-disk"
    refused = vault_cli(home, "vault", "unseal", "m", "--to", str(target))
    assert refused.returncode == 1 and "not tmpfs" in refused.stderr
    assert "--allow-disk" in refused.stderr and not target.exists()
    ok(vault_cli(home, "vault", "unseal", "m", "--to", str(target), "--allow-disk", "--check-hash"))
    assert tree(target) == tree(source)
    ok(vault_cli(home, "vault", "wipe", str(target)))
    assert not target.exists()


def test_a_key_file_readable_by_others_is_refused(home: Path, source: Path) -> None:
    ok(vault_cli(home, "vault", "import", str(source), "--name", "m"))
    key_file = next((home / "keys" / "vault").glob("*.kek"))
    os.chmod(key_file, 0o640)
    refused = vault_cli(home, "vault", "verify", "m")
    assert refused.returncode == 1
    assert f"key file {key_file} is accessible by group or others (mode 0640)" in refused.stderr


def test_wipe_refuses_what_unseal_did_not_make(home: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    write_random(precious / "data", 10)
    refused = vault_cli(home, "vault", "wipe", str(precious))
    assert refused.returncode == 1 and "refusing to delete it" in refused.stderr
    assert (precious / "data").exists()


def test_env_provider_and_an_uninitialised_home(
    tmp_path: Path, source: Path, shm_dir: Path
) -> None:
    home = tmp_path / "bare"  # no `appliance init`: no database, so no audit, still works
    env = {"APPLIANCE_VAULT_KEY_PROVIDER": "env", "MODEL_VAULT_KEK": os.urandom(32).hex()}
    ok(vault_cli(home, "vault", "import", str(source), "--name", "m", env=env))
    ok(vault_cli(home, "vault", "unseal", "m", "--to", str(shm_dir / "m"), env=env))
    assert tree(shm_dir / "m") == tree(source)
    wrong = {**env, "MODEL_VAULT_KEK": os.urandom(32).hex()}
    refused = vault_cli(home, "vault", "verify", "m", env=wrong)
    assert refused.returncode == 1 and "(wrong KEK?)" in refused.stderr
    assert not (home / "keys").exists()


def test_engine_serve_takes_exactly_one_model_source(home: Path) -> None:
    both = vault_cli(home, "engine", "serve", "--model", str(home), "--vault", "x", "--port", "9")
    assert both.returncode == 2 and "exactly one of --model DIR and --vault NAME" in both.stderr
    missing = vault_cli(home, "engine", "serve", "--vault", "nope", "--port", "9")
    assert missing.returncode == 1 and "no model named 'nope'" in missing.stderr


ENTRYPOINT = Path(__file__).resolve().parents[2] / "compose" / "vllm-entrypoint.sh"
FAKE_VLLM = """#!/bin/sh
# Stands in for vLLM: records what it was given and serves until told to stop.
echo "$@" > "$RECORD"
ls -A "$2" >> "$RECORD"
trap 'exit 0' TERM
while :; do sleep 0.1; done
"""


def test_compose_entrypoint_unseals_serves_and_wipes(
    home: Path, source: Path, shm_dir: Path, tmp_path: Path
) -> None:
    ok(vault_cli(home, "vault", "import", str(source), "--name", "m"))
    # The registry's vLLM options of the model are appended to the container's command.
    ok(vault_cli(home, "model", "add", "m", "--upstream", "http://vllm:8000"))
    ok(vault_cli(home, "model", "set", "m", "--reasoning-parser", "granite"))
    fake = tmp_path / "vllm"
    fake.write_text(FAKE_VLLM, encoding="utf-8")
    fake.chmod(0o755)
    record = tmp_path / "record"
    unseal_dir = shm_dir / "models" / "m"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(
        APPLIANCE_HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        VAULT_MODEL="m",
        UNSEAL_DIR=str(unseal_dir),
        VLLM=str(fake),
        VLLM_VERSION="0.8.5",  # the image's vLLM; this Python has none to ask
        RECORD=str(record),
    )
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "--served-model-name", "m", "--port", "8000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = timing.deadline(60)
    while not (record.exists() and len(record.read_text().splitlines()) > 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "vLLM was never started"
        time.sleep(0.1)
    args, *listing = record.read_text(encoding="utf-8").splitlines()
    assert args == (
        f"serve {unseal_dir} --served-model-name m --port 8000"
        " --enable-reasoning --reasoning-parser granite"
    )
    assert set(listing) == {*tree(source).keys(), "sub", ".appliance-unsealed"} - {
        "sub/dir/tokenizer.bin"
    }
    assert tree(unseal_dir) == tree(source)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=timing.scaled(60))
    assert process.returncode == 0, stderr
    assert not unseal_dir.exists(), "the entrypoint did not wipe after vLLM stopped"
    assert f"wiped {unseal_dir}" in stderr
    assert [e.outcome for e in events(home, "admin.vault.unseal")] == ["success"]
