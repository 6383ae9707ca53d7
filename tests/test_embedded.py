"""The embedded default end to end: `appliance serve` on SQLite with the built-in engine.

Everything runs as a new user would run it: subprocesses configured by APPLIANCE_HOME,
the SQLite database, Celery on Kombu's SQLAlchemy transport, and a clean stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select

from appliance.db import Database
from appliance.models import AuditEvent, ServiceHeartbeat
from tests import timing
from tests.conftest import free_port, make_settings
from tests.test_cli import last_line, run

pytestmark = pytest.mark.slow


def port_open(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=timing.scaled(1))
    except httpx.ConnectError:
        return False
    return True


def test_serve_runs_the_whole_data_path_and_stops_cleanly(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "home"
    last_line(run(home, "init"))
    last_line(run(home, "model", "add", "tiny", "--path", str(tiny_model)))
    key = last_line(run(home, "key", "create", "--user", "admin", "--name", "e2e"))
    api_port, portal_port, engine_port, metrics_port = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    user_home = tmp_path / "user-home"  # nothing may be written outside APPLIANCE_HOME
    user_home.mkdir()
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(HOME=str(user_home))
    env.update(
        APPLIANCE_HOME=str(home),
        APPLIANCE_ENGINE_BASE_PORT=str(engine_port),
        APPLIANCE_HEALTH_INTERVAL_S="1",
        APPLIANCE_METRICS_PORT=str(metrics_port),
    )
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance",
            "serve",
            "--api-port",
            str(api_port),
            "--portal-port",
            str(portal_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = [serve.stdout.readline() for _ in range(4)]  # type: ignore[union-attr]
        assert f"API:    http://127.0.0.1:{api_port}/v1   (ready)" in banner[0], banner
        assert f"http://127.0.0.1:{portal_port}/" in banner[1]

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{api_port}/v1", api_key=key)
        completion = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Say hello"}], max_tokens=8
        )
        assert completion.choices[0].message.content
        streamed = list(
            client.chat.completions.create(
                model="tiny",
                messages=[{"role": "user", "content": "Say hello"}],
                max_tokens=4,
                stream=True,
            )
        )
        assert streamed[-1].choices[0].finish_reason in {"stop", "length"}
        scraped = httpx.get(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=timing.scaled(5)
        ).text
        assert (
            'appliance_api_request_duration_seconds_count{endpoint="v1.chat_completions"' in scraped
        )
        assert 'appliance_api_time_to_first_token_seconds_count{model="tiny"}' in scraped
        assert 'appliance_api_completion_tokens_total{model="tiny"}' in scraped
        login = httpx.get(f"http://127.0.0.1:{portal_port}/login", timeout=timing.scaled(5))
        assert login.status_code == 200 and "csrf_token" in login.text

        db = Database(make_settings(home))
        deadline = timing.deadline(30)
        heartbeat = None
        while time.monotonic() < deadline and heartbeat is None:
            with db.session() as session:
                heartbeat = session.get(ServiceHeartbeat, "worker")
            time.sleep(0.5)
        assert heartbeat is not None, "the Celery worker never ran the periodic task"
        with db.session() as session:
            events = list(
                session.scalars(
                    select(AuditEvent).where(AuditEvent.action == "api.chat.completion")
                )
            )
        assert len(events) >= 1
        assert events[0].actor == "admin" and events[0].model == "tiny"
        assert events[0].completion_tokens == completion.usage.completion_tokens
        db.dispose()
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(timeout=timing.scaled(30))
        finally:
            if serve.poll() is None:
                serve.kill()
            serve.stdout.close()  # type: ignore[union-attr]
    assert code == 0
    assert list(user_home.iterdir()) == []
    for port in (api_port, portal_port, engine_port):
        assert not port_open(port), f"port {port} still answers after serve stopped"
