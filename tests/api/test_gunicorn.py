"""The production serving: gunicorn with appliance/api/gunicorn_conf.py and a gevent worker."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.services import Services
from tests import timing
from tests.conftest import free_port

pytestmark = pytest.mark.slow

CONF = Path(__file__).resolve().parents[2] / "appliance" / "api" / "gunicorn_conf.py"
HELD_OPEN = 300
INVALID_KEY = "sk-app-xxxxxxxxyyyyyyyyyyyyyyyy"


@dataclass
class Gunicorn:
    proc: subprocess.Popen[bytes]
    url: str
    metrics_url: str
    home: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_up(server: Gunicorn, timeout_s: float = 60.0) -> None:
    deadline = timing.deadline(timeout_s)
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.output()
        try:
            if httpx.get(f"{server.url}/healthz", timeout=timing.scaled(2)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer in {timeout_s} s:\n{server.output()}")


@pytest.fixture(scope="module")
def gunicorn_api(
    pg_services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    settings = pg_services.settings
    api_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        APPLIANCE_HOME=str(settings.home),
        APPLIANCE_DATABASE_URL=settings.effective_database_url,
        APPLIANCE_BIND_HOST="127.0.0.1",
        APPLIANCE_API_PORT=str(api_port),
        APPLIANCE_PORTAL_PORT=str(free_port()),
        APPLIANCE_METRICS_PORT=str(metrics_port),
        WEB_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(CONF), "appliance.wsgi:api"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Gunicorn(
        proc,
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{metrics_port}/metrics",
        settings.home,
        log,
    )
    try:
        wait_until_up(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=timing.scaled(10))


def test_health_and_auth_paths_work_under_gevent(gunicorn_api: Gunicorn) -> None:
    with httpx.Client(base_url=gunicorn_api.url, timeout=timing.scaled(10)) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        # No token: refused before any database work.
        assert http.get("/v1/models").status_code == 401
        # A well-formed but unknown key: a database lookup (psycopg under gevent), then 401.
        for _ in range(3):
            refused = http.get("/v1/models", headers={"Authorization": f"Bearer {INVALID_KEY}"})
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["type"]
    output = gunicorn_api.output()
    assert "Booting worker" in output and "gevent" in output.lower()
    assert "Traceback" not in output, output


def test_metrics_port_serves_all_workers(gunicorn_api: Gunicorn) -> None:
    multiproc_dir = gunicorn_api.home / "run" / "prometheus"
    assert multiproc_dir.is_dir()
    assert multiproc_dir.stat().st_mode & 0o777 == 0o700
    response = httpx.get(gunicorn_api.metrics_url, timeout=timing.scaled(10))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    (workers,) = families["appliance_api_gunicorn_workers"].samples
    assert workers.value == 1
    (streams,) = families["appliance_api_streams_in_flight"].samples
    assert streams.value == 0
    elsewhere = gunicorn_api.metrics_url.removesuffix("/metrics") + "/other"
    assert httpx.get(elsewhere, timeout=timing.scaled(10)).status_code == 404
    # The metrics are not served on the API port.
    assert httpx.get(f"{gunicorn_api.url}/metrics", timeout=timing.scaled(10)).status_code in (
        401,
        404,
    )


def test_one_worker_holds_300_requests_open(gunicorn_api: Gunicorn) -> None:
    """300 requests in progress at once (headers half sent) on one gevent worker all complete."""
    host, port = gunicorn_api.url.removeprefix("http://").split(":")
    conns = []
    try:
        for _ in range(HELD_OPEN):
            conn = socket.create_connection((host, int(port)), timeout=timing.scaled(10))
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
            conns.append(conn)
        time.sleep(
            timing.scaled(1.0)
        )  # every request is now open in the worker, waiting for its end
        # Meanwhile the worker still answers others at once.
        started = time.monotonic()
        assert httpx.get(f"{gunicorn_api.url}/healthz", timeout=timing.scaled(5)).status_code == 200
        assert time.monotonic() - started < timing.scaled(1.0)
        started = time.monotonic()
        for conn in conns:
            conn.sendall(b"\r\n")
        answers = read_all(conns, deadline=started + timing.scaled(20.0))
        elapsed = time.monotonic() - started
    finally:
        for conn in conns:
            conn.close()
    assert len(answers) == HELD_OPEN
    assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b'{"status":"ok"}\n') for a in answers)
    assert elapsed < timing.scaled(10.0)


def read_all(conns: list[socket.socket], deadline: float) -> list[bytes]:
    """Read each connection until it holds one whole /healthz answer."""
    buffers = {c.fileno(): b"" for c in conns}
    by_fd = {c.fileno(): c for c in conns}
    pending = set(buffers)
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending)[:1000], [], [], 0.5)
        for fd in ready:
            chunk = by_fd[fd].recv(65536)
            buffers[fd] += chunk
            if not chunk or buffers[fd].endswith(b"}\n"):
                pending.discard(fd)
    return [buffers[fd] for fd in buffers if fd not in pending]


PSYCOPG_UNDER_GEVENT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import sys, time
    import gevent, psycopg

    def sleep_in_db():
        with psycopg.connect(sys.argv[1]) as conn:
            conn.execute("SELECT pg_sleep(0.5)")

    started = time.monotonic()
    gevent.joinall([gevent.spawn(sleep_in_db) for _ in range(4)], raise_error=True)
    print(round(time.monotonic() - started, 3))
    """
)


def test_psycopg_waits_cooperatively_under_gevent(pg_services: Services) -> None:
    """Four 0.5 s queries from four greenlets overlap: psycopg does not block the loop."""
    url = pg_services.settings.effective_database_url.replace("postgresql+psycopg", "postgresql")
    done = subprocess.run(
        [sys.executable, "-c", PSYCOPG_UNDER_GEVENT, url],
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
        check=True,
    )
    assert float(done.stdout) < 1.5, done.stdout


def test_sigterm_stops_cleanly(gunicorn_api: Gunicorn) -> None:
    """Last in this module: the server is stopped here."""
    proc = gunicorn_api.proc
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=timing.scaled(15)) == 0
    assert time.monotonic() - started < timing.scaled(15)
    output = gunicorn_api.output()
    assert "Shutting down: Master" in output
    assert "Traceback" not in output, output
