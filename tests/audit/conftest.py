"""A fresh database per test (both real backends): the chain is one per database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from appliance.bootstrap import init_home
from appliance.services import Services, build_services
from tests.conftest import PG_ADMIN_DSN, make_settings


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """An initialised home on a database of its own."""
    if request.param == "sqlite":
        services = build_services(make_settings(tmp_path / "home"))
        init_home(services)
        yield services
        services.db.dispose()
        return
    name = f"appliance_audit_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    services = build_services(make_settings(tmp_path / "home", database_url=url))
    init_home(services)
    yield services
    services.db.dispose()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
