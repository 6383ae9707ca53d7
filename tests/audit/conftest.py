"""A fresh database per test (both real backends): the chain is one per database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.bootstrap import init_home
from appliance.services import Services, build_services
from tests.conftest import make_settings, scratch_services


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """An initialised home on a database of its own."""
    if request.param == "sqlite":
        services = build_services(make_settings(tmp_path / "home"))
        init_home(services)
        yield services
        services.db.dispose()
        return
    with scratch_services(tmp_path / "home", "appliance_audit") as services:
        yield services
