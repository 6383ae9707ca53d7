"""Shared fixtures: real PostgreSQL and Redis (running on 127.0.0.1), homes in tmp dirs.

Each test session creates its own PostgreSQL database, runs the Alembic migrations
into it (so migrations are tested) and drops it at the end. Tests create their own
users, keys and models with unique names, so they never depend on each other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from appliance.bootstrap import InitResult, init_home
from appliance.config import Settings, load_settings
from appliance.models import AuditEvent
from appliance.services import Services, build_services
from tests import timing

PG_ADMIN_DSN = os.environ.get("APPLIANCE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("APPLIANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379")

# Under pytest-xdist (`make check` runs -n 2) each worker is its own session: "gw0", "gw1"...
# ("" without xdist). PostgreSQL databases are made per session with unique names; Redis
# has numbered databases, so each worker has one of its own. Within a worker tests run one
# at a time and no Redis fixture outlives its module, so the suites that use Redis share
# their worker's database, each flushing it before and after. Databases 0 and 1 are left
# to whatever else runs on this Redis.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
REDIS_FIRST_DB = 2
REDIS_DATABASES = 16  # Redis's default `databases`


def worker_index() -> int:
    """0 without xdist, N on worker gwN."""
    return int(XDIST_WORKER[2:]) if XDIST_WORKER.startswith("gw") else 0


def worker_redis_db() -> int:
    """This worker's own Redis database number."""
    db = REDIS_FIRST_DB + worker_index()
    if db >= REDIS_DATABASES:
        raise pytest.UsageError(
            f"xdist worker {XDIST_WORKER} has no Redis database of its own: Redis has "
            f"{REDIS_DATABASES} and the tests use {REDIS_FIRST_DB} to {REDIS_DATABASES - 1}, "
            f"one per worker; run with -n {REDIS_DATABASES - REDIS_FIRST_DB} or fewer"
        )
    return db


def pytest_configure(config: pytest.Config) -> None:
    try:
        timing.time_factor()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    return f"APPLIANCE_TEST_TIME_FACTOR: {timing.time_factor():g} (scales every deadline)"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-timeout's limits (the ini's, or a test's own marker) times the time factor."""
    factor = timing.time_factor()
    if factor == 1:
        return
    default = (
        config.getvalue("timeout") or os.environ.get("PYTEST_TIMEOUT") or config.getini("timeout")
    )
    for item in items:
        marker = item.get_closest_marker("timeout")
        kwargs = dict(marker.kwargs) if marker else {}
        args = list(marker.args) if marker else []
        base = kwargs.pop("timeout", args[0] if args else default)
        if not base or float(base) <= 0:  # 0: no limit
            continue
        if len(args) > 1:
            kwargs["method"] = args[1]
        item.add_marker(pytest.mark.timeout(float(base) * factor, **kwargs), append=False)


@pytest.fixture(autouse=True)
def _no_ambient_appliance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("APPLIANCE_") and not name.startswith("APPLIANCE_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with scratch_pg_database("appliance_test") as url:
        yield url


@contextlib.contextmanager
def scratch_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    worker = f"_{XDIST_WORKER}" if XDIST_WORKER else ""  # only to tell them apart
    name = f"{prefix}{worker}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    host, port = base.get("host", "127.0.0.1"), base.get("port", "5432")
    try:
        yield f"postgresql+psycopg://{base.get('user', 'postgres')}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_services(home: Path, prefix: str = "appliance_scratch") -> Iterator[Services]:
    """An initialised home on a PostgreSQL database of its own, dropped afterwards."""
    with scratch_pg_database(prefix) as url:
        services = build_services(make_settings(home, database_url=url))
        init_home(services)
        try:
            yield services
        finally:
            services.db.dispose()


@contextlib.contextmanager
def flushed_redis(db: int) -> Iterator[str]:
    """The URL of Redis database ``db``, empty before and after."""
    url = f"{REDIS_URL}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def make_settings(home: Path, **overrides: object) -> Settings:
    return load_settings(home=str(home), **overrides)


@pytest.fixture(scope="session")
def pg_home(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str
) -> Iterator[tuple[Services, InitResult]]:
    """An initialised appliance home whose database is the session's PostgreSQL database."""
    home = tmp_path_factory.mktemp("pg-home")
    services = build_services(make_settings(home, database_url=pg_url))
    result = init_home(services)
    yield services, result
    services.db.dispose()


@pytest.fixture(scope="session")
def pg_services(pg_home: tuple[Services, InitResult]) -> Services:
    return pg_home[0]


@pytest.fixture()
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    """A freshly initialised embedded-default home (SQLite) for one test."""
    services = build_services(make_settings(tmp_path / "home"))
    init_home(services)
    yield services
    services.db.dispose()


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real HTTP server on 127.0.0.1 running a WSGI app in a background thread."""

    def __init__(self, app: object) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)  # type: ignore[arg-type]
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving; an API app also flushes its writes and stops its health checks."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=timing.scaled(5))
        state = getattr(self.app, "extensions", {}).get("appliance")
        if callable(getattr(state, "close", None)):
            state.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama model made on the spot (nothing can be downloaded)."""
    from appliance.engine.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def engine_server(tiny_model: Path) -> Iterator[LiveServer]:
    """The built-in engine serving the tiny model under the name 'tiny-served'."""
    from appliance.engine.server import create_app

    server = LiveServer(create_app(tiny_model, served_model_name="tiny-served"))
    yield server
    server.stop()


def wait_for_events(
    services: Services, *criteria: Any, expect: int = 1, timeout_s: float = 5.0
) -> list[AuditEvent]:
    """Audit events matching ``criteria``, in order, once at least ``expect`` exist.

    The API writes a call's event as its response closes, just after the client has
    read it, so tests poll briefly instead of reading once.
    """
    deadline = timing.deadline(timeout_s)
    while True:
        with services.db.session() as session:
            events = list(
                session.scalars(select(AuditEvent).where(*criteria).order_by(AuditEvent.seq))
            )
        if len(events) >= expect or time.monotonic() > deadline:
            return events
        time.sleep(0.02)
