"""Celery with a real worker and beat, through the real Redis broker, on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from appliance.models import ServiceHeartbeat, Upstream, utcnow
from appliance.services import Services
from appliance.tasks import HEALTH_TASK, create_celery
from appliance.upstream.registry import add_model
from tests import timing
from tests.conftest import (
    LiveServer,
    flushed_redis,
    free_port,
    make_settings,
    unique,
    worker_redis_db,
)

pytestmark = pytest.mark.slow
REDIS_DB = worker_redis_db()  # this worker's own Redis database, flushed before and after


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    with flushed_redis(REDIS_DB) as url:
        yield url


@pytest.fixture(scope="module")
def worker(pg_services: Services, broker_url: str, tmp_path_factory) -> Iterator[dict[str, str]]:
    """`celery worker --beat` in a subprocess, configured only through the environment."""
    run_dir = tmp_path_factory.mktemp("worker")
    env = {
        **os.environ,
        "APPLIANCE_HOME": str(pg_services.settings.home),
        "APPLIANCE_DATABASE_URL": pg_services.settings.effective_database_url,
        "APPLIANCE_BROKER_URL": broker_url,
        "APPLIANCE_HEALTH_INTERVAL_S": "1",
    }
    log = (run_dir / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "appliance.worker",
            "worker",
            "--beat",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--schedule",
            str(run_dir / "schedule"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield env
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timing.scaled(20))
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    finally:
        log.close()
    assert process.returncode == 0, (run_dir / "worker.log").read_text()[-3000:]


def test_worker_runs_health_task_through_redis(
    worker: dict[str, str], pg_services: Services, engine_server: LiveServer, broker_url: str
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    with pg_services.db.session() as session:
        add_model(session, unique("live"), upstream_urls=[engine_server.url])
        add_model(session, unique("dead"), upstream_urls=[dead_url])
    app = create_celery(
        make_settings(
            pg_services.settings.home,
            database_url=worker["APPLIANCE_DATABASE_URL"],
            broker_url=broker_url,
        )
    )
    result = app.send_task(HEALTH_TASK).get(timeout=timing.scaled(60))
    assert result["upstreams"][engine_server.url] is True
    assert result["upstreams"][dead_url] is False
    with pg_services.db.session() as session:
        rows = {u.url: u for u in session.scalars(select(Upstream))}
    assert rows[engine_server.url].healthy is True
    assert rows[dead_url].healthy is False
    assert rows[dead_url].last_error == "ConnectError"
    assert rows[dead_url].last_checked_at is not None


def test_beat_schedules_the_periodic_task(worker: dict[str, str], pg_services: Services) -> None:
    started = utcnow()

    def seen_since(name: str) -> datetime | None:
        with pg_services.db.session() as session:
            row = session.get(ServiceHeartbeat, name)
            return row.last_seen if row and row.last_seen > started else None

    deadline = timing.deadline(30)
    while time.monotonic() < deadline and not (seen_since("beat") and seen_since("worker")):
        time.sleep(0.5)
    assert seen_since("beat"), "beat never triggered the periodic task"
    assert seen_since("worker")


def test_worker_settings_come_from_the_home(pg_services: Services, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, broker_url="redis://127.0.0.1:6379/3")
    app = create_celery(settings)
    assert app.conf.broker_url == "redis://127.0.0.1:6379/3"
    assert app.conf.result_backend == "redis://127.0.0.1:6379/3"
    embedded = create_celery(make_settings(tmp_path))
    assert embedded.conf.broker_url == f"sqla+sqlite:///{tmp_path / 'broker.db'}"
