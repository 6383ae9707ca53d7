"""Zero loss: a real Celery worker ships to the Elasticsearch stand-in while it goes down
and while the worker is killed (-9) in the middle of a batch; every event arrives once,
in chain order, and the chain verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import insert

from appliance.audit import chain
from appliance.audit.checkpoints import Signer
from appliance.audit.events import AuditAction, event_row
from appliance.audit.verify import verify
from appliance.services import Services
from tests import timing
from tests.audit.es_standin import ElasticsearchStandIn
from tests.conftest import flushed_redis, worker_redis_db

pytestmark = pytest.mark.slow
STREAM = "logs-appliance.audit-zeroloss"
REDIS_DB = worker_redis_db()


@pytest.fixture()
def pg_fresh(fresh: Services) -> Services:
    if not fresh.db.url.startswith("postgresql"):
        pytest.skip("the worker test runs on the production backends (PostgreSQL, Redis)")
    return fresh


@pytest.fixture()
def broker() -> Iterator[str]:
    with flushed_redis(REDIS_DB) as url:
        yield url


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    started, deadline = time.monotonic(), timing.deadline(timeout_s)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timing.scaled(timeout_s):.0f} s: {what}")
        time.sleep(0.05)
    print(f"{what}: {time.monotonic() - started:.1f} s (deadline {timing.scaled(timeout_s):.0f} s)")


def write_events(services: Services, start: int, count: int) -> None:
    rows = [event_row(AuditAction.KEY_CREATE, actor=f"z-{start + i}") for i in range(count)]
    with services.db.session() as session:
        session.execute(insert(chain.EVENTS), rows)


def test_every_event_arrives_exactly_once_in_order(
    pg_fresh: Services, broker: str, tmp_path: Path
) -> None:
    services = pg_fresh
    standin = ElasticsearchStandIn()
    standin.delay_s = 0.25  # a bulk request takes a while: room to kill the worker in it
    env = {
        **os.environ,
        "APPLIANCE_HOME": str(services.settings.home),
        "APPLIANCE_DATABASE_URL": services.settings.effective_database_url,
        "APPLIANCE_BROKER_URL": broker,
        "APPLIANCE_ELASTICSEARCH_URL": standin.url,
        "APPLIANCE_AUDIT_DATA_STREAM": STREAM,
        "APPLIANCE_AUDIT_SEAL_INTERVAL_S": "0.3",
        "APPLIANCE_AUDIT_SHIP_INTERVAL_S": "0.3",
        "APPLIANCE_AUDIT_SHIP_BATCH": "150",
        "APPLIANCE_AUDIT_CHECKPOINT_INTERVAL_S": "1",
        "APPLIANCE_HEALTH_INTERVAL_S": "60",
    }
    logs: list[IO[bytes]] = []

    def start_worker() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(logs)}.log").open("wb")
        logs.append(log)
        argv = [sys.executable, "-m", "celery", "-A", "appliance.worker", "worker", "--beat",
                "--concurrency", "1", "--loglevel", "INFO",
                "--schedule", str(tmp_path / "schedule")]  # fmt: skip
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def received() -> int:
        return len(standin.documents(STREAM))

    write_events(services, 0, 1500)
    worker = start_worker()
    try:
        # 1. Killed -9 (worker and its pool child) while a bulk request is in flight.
        wait_until(lambda: received() >= 300 and standin.in_bulk.is_set(), 90, "a bulk")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timing.scaled(10))
        write_events(services, 1500, 500)
        # 2. Elasticsearch goes away for a while; the backlog waits in the database.
        standin.stop()
        worker = start_worker()
        time.sleep(3)
        write_events(services, 2000, 500)
        standin.start()
        total = 1 + 2500  # + the init event
        wait_until(lambda: received() >= total and chain.unsealed_count(services.db) == 0,
                   120, "every event to arrive")  # fmt: skip
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timing.scaled(20))
        standin.stop()
        for log in logs:
            log.close()
    docs = standin.documents(STREAM)
    assert [d["event"]["sequence"] for d in docs] == list(range(1, total + 1))
    assert standin.received.conflicts > 0  # the killed batch was sent again, stored once
    report = verify(services.db, Signer(services.master_key).public)
    assert report.ok and report.events >= total and report.checkpoints >= 1
    lines = services.settings.effective_audit_jsonl_file.read_text().splitlines()
    assert [json.loads(line)["event"]["sequence"] for line in lines][:total] == list(
        range(1, total + 1)
    )
