"""Processes for the benchmarks: the fast upstream, the gateway under gunicorn, LiteLLM."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from appliance.auth.api_keys import create_api_key
from appliance.auth.users import create_user
from appliance.bootstrap import init_home
from appliance.services import build_services
from appliance.upstream.registry import add_model, list_models
from tests import timing
from tests.conftest import REDIS_URL, free_port, make_settings

HERE = Path(__file__).parent
LITELLM = Path(__file__).resolve().parents[2] / ".venv-litellm" / "bin" / "litellm"


@dataclass
class Target:
    name: str
    base_url: str  # ends in /v1
    headers: dict[str, str] = field(default_factory=dict)
    pid: int | None = None


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = timing.deadline(timeout_s)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=timing.scaled(2)).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=timing.scaled(15))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    port = free_port()
    process = spawn(
        [sys.executable, str(HERE / "fast_upstream.py"), str(port)],
        tmp_path_factory.mktemp("upstream") / "upstream.log",
    )
    wait_until_up(f"http://127.0.0.1:{port}/health", process)
    yield Target("direct", f"http://127.0.0.1:{port}/v1", pid=process.pid)
    stop(process)


@pytest.fixture(scope="module")
def gateway(
    pg_url: str, upstream: Target, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The API app under gunicorn, one worker, authentication, RBAC and audit on."""
    with running_gateway(pg_url, upstream, tmp_path_factory.mktemp("gateway-home")) as target:
        yield target


@contextlib.contextmanager
def running_gateway(
    pg_url: str, upstream: Target, home: Path, name: str = "gateway", **settings: str
) -> Iterator[Target]:
    """A gateway on ``home`` (APPLIANCE_<NAME> ``settings`` on top) serving ``fast``."""
    services = build_services(make_settings(home, database_url=pg_url))
    init_home(services)
    with services.db.session() as session:
        if "fast" not in {m.name for m in list_models(session)}:
            add_model(session, "fast", upstream_urls=[upstream.base_url])
        # An app-role key whose own limits are too high to throttle the benchmark: every
        # request still runs the Redis rate-limit script and the tokens/day charge.
        user, _ = create_user(session, f"bench-{name}-{secrets.token_hex(3)}", ["app"])
        new = create_api_key(session, user, "bench")
        new.key.requests_per_minute = new.key.tokens_per_day = 2_000_000_000
        key = new.plaintext
    services.db.dispose()
    port = free_port()
    env = {
        **os.environ,
        "APPLIANCE_HOME": str(home),
        "APPLIANCE_DATABASE_URL": pg_url,
        "APPLIANCE_API_PORT": str(port),
        "APPLIANCE_REDIS_URL": f"{REDIS_URL}/14",
        "APPLIANCE_PORTAL_PORT": str(free_port()),
        "APPLIANCE_METRICS_PORT": str(free_port()),
        **{f"APPLIANCE_{k.upper()}": v for k, v in settings.items()},
    }
    # The production config (gevent workers), one worker like LiteLLM's default.
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:appliance.api.gunicorn_conf",
        "--workers",
        "1",
        "appliance.wsgi:api",
    ]
    process = spawn(argv, home / "gateway.log", env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield Target(
            name,
            f"http://127.0.0.1:{port}/v1",
            {"Authorization": f"Bearer {key}"},
            pid=process.pid,
        )
    finally:
        stop(process)


@pytest.fixture(scope="module")
def litellm(upstream: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target | None]:
    """LiteLLM's proxy on the same upstream, its default single worker, as the peer."""
    if not LITELLM.exists():
        yield None
        return
    workdir = tmp_path_factory.mktemp("litellm")
    config = workdir / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: fast\n    litellm_params:\n"
        f"      model: openai/fast\n      api_base: {upstream.base_url}\n      api_key: unused\n"
    )
    port = free_port()
    master_key = f"sk-{secrets.token_hex(32)}"  # LiteLLM authenticates too: a fair peer
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": master_key,
    }
    process = spawn(
        [str(LITELLM), "--config", str(config), "--port", str(port)], workdir / "litellm.log", env
    )
    wait_until_up(f"http://127.0.0.1:{port}/health/liveliness", process, timeout_s=180)
    yield Target(
        "litellm",
        f"http://127.0.0.1:{port}/v1",
        {"Authorization": f"Bearer {master_key}"},
        pid=process.pid,
    )
    stop(process)
