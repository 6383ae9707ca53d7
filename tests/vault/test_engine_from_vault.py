"""The built-in engine answers from a model that exists only sealed in the vault."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests import timing
from tests.conftest import free_port
from tests.vault.test_vault_cli import details, events, ok, vault_cli

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def wait_healthy(url: str, process: subprocess.Popen[str], timeout_s: float = 120) -> None:
    deadline = timing.deadline(timeout_s)
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(url, timeout=timing.scaled(1)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def test_chat_completion_from_a_sealed_model(
    home: Path, tmp_path: Path, tiny_model: Path, shm_dir: Path
) -> None:
    plaintext = tmp_path / "tiny"
    shutil.copytree(tiny_model, plaintext)
    ok(vault_cli(home, "vault", "import", str(plaintext), "--name", "tiny"))
    shutil.rmtree(plaintext)  # from here on the model exists only encrypted

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(APPLIANCE_HOME=str(home), APPLIANCE_VAULT_TMPFS_DIR=str(shm_dir))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance",
            "engine",
            "serve",
            "--vault",
            "tiny",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server)
        (unsealed,) = list(shm_dir.iterdir())
        assert unsealed.name.startswith("appliance-vault-")
        assert (unsealed / "config.json").is_file() and oct(unsealed.stat().st_mode)[-3:] == "700"
        engine_key = (home / "keys" / "engine.key").read_text().strip()  # made if missing
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=engine_key, max_retries=0
        ) as client:
            assert [m.id for m in client.models.list().data] == ["tiny"]
            reply = client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=8
            )
        assert reply.choices[0].message.role == "assistant"
        assert reply.usage is not None and reply.usage.completion_tokens <= 8
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=timing.scaled(60))
    assert server.returncode == 0, stderr
    assert list(shm_dir.iterdir()) == [], "the unsealed model outlived the server"
    assert f"wiped {unsealed}" in stderr
    (event,) = events(home, "admin.vault.unseal")
    assert details(event)["to"] == str(unsealed) and details(event)["by"] == "engine"
    (wiped,) = events(home, "admin.vault.wipe")
    assert wiped.target == str(unsealed)
