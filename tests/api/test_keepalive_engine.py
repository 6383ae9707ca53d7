"""Sequential requests with pauses around the built-in engine's keep-alive: no error.

The engine runs as it is served (``appliance engine serve``: gunicorn's gthread worker,
which closes a connection idle for 2 s); the gateway pools its connections to it. A
request sent on a pooled connection just as the engine closes it used to fail with 503
for a one-replica model, and the official SDK (``max_retries=0``) saw it. Here the pauses
are drawn around those 2 s, the gateway's idle timeout (1 s) keeps it from reusing a
connection the engine may be closing, and no request may fail.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from appliance.services import Services
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.conftest import Caller
from tests.conftest import LiveServer, free_port, unique

pytestmark = pytest.mark.slow

REQUESTS = 200
PAUSES_S = (1.6, 2.6)  # around the engine's keep-alive of 2 s (gunicorn's default)


@pytest.fixture(scope="module")
def served_engine(
    pg_services: Services, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The built-in engine serving the tiny model the production way, on the home's key."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(APPLIANCE_HOME=str(pg_services.settings.home), PYTHONUNBUFFERED="1")
    log = tmp_path_factory.mktemp("engine") / "engine.log"
    argv = [sys.executable, "-m", "appliance", "engine", "serve", "--model", str(tiny_model),
            "--port", str(port), "--served-model-name", "tiny-served"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = timing.deadline(120)
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=timing.scaled(20))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(1200)
def test_requests_paused_around_the_engines_keepalive_all_succeed(
    api_server: LiveServer, pg_services: Services, served_engine: str, make_caller
) -> None:
    model = unique("keepalive")
    with pg_services.db.session() as session:
        add_model(session, model, upstream_urls=[f"{served_engine}/v1"], served_name="tiny-served")
    caller: Caller = make_caller(role="app")
    client = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=caller.key, max_retries=0)
    rng = random.Random(19)
    messages = [{"role": "user", "content": "hello"}]
    errors: list[str] = []
    for i in range(REQUESTS):
        time.sleep(rng.uniform(*PAUSES_S))
        try:
            if i % 2:
                chunks = client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=2,
                    stream=True,
                )
                assert [c for c in chunks]
            else:
                answer = client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=2,
                )
                assert answer.choices
        except openai.APIError as exc:
            errors.append(f"request {i}: {type(exc).__name__}: {exc}")
    assert errors == []
    ready = httpx.get(f"{api_server.url}/readyz", timeout=timing.scaled(10)).json()
    assert ready["checks"]["upstreams"][model] == "ok"
