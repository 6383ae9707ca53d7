"""The dashboard's traffic is scoped like /keys: who may see every key (``admin:keys:read``)
sees all traffic; everyone else sees only their own keys' calls, tokens and errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.audit.events import AuditAction, record
from appliance.auth.api_keys import create_api_key
from appliance.auth.users import get_user
from appliance.models import utcnow
from appliance.portal.app import create_app
from appliance.services import Services
from tests.conftest import scratch_services
from tests.portal.helpers import sign_in


@pytest.fixture()
def scoped_services(tmp_path: Path) -> Iterator[Services]:
    """A database of its own: every API event on it is this test's."""
    with scratch_services(tmp_path / "home", "appliance_dash_scope") as services:
        yield services


def _key_with_traffic(services: Services, username: str, calls: list[tuple[str, int]]) -> str:
    """A key of ``username`` and one API event per (outcome, tokens) in the last minutes."""
    now = utcnow()
    with services.db.session() as session:
        key = create_api_key(session, get_user(session, username), "dash").key
        for minutes, (outcome, tokens) in enumerate(calls, start=1):
            event = record(
                session,
                AuditAction.API_CHAT_COMPLETION,
                outcome=outcome,
                actor=username,
                api_key_prefix=key.prefix,
                prompt_tokens=tokens,
                completion_tokens=0,
            )
            event.timestamp = now - timedelta(minutes=minutes)
        return key.prefix


def _figures(html: str) -> dict[str, int]:
    found = re.findall(
        r'data-testid="(requests-hour|errors-hour|tokens-today)">'
        r'<span class="number[^"]*">(\d+)</span>',
        html,
    )
    return {name: int(value) for name, value in found}


def _signed_in(app: Flask, services: Services, roles: list[str]) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, sign_in(client, services, roles)


@pytest.mark.parametrize("role", ["developer", "operator"])
def test_dashboard_shows_only_the_viewers_own_keys(scoped_services: Services, role: str) -> None:
    app = create_app(services=scoped_services)
    viewer, viewer_name = _signed_in(app, scoped_services, [role])
    other, other_name = _signed_in(app, scoped_services, ["developer"])
    admin, _ = _signed_in(app, scoped_services, ["admin"])
    mine = _key_with_traffic(scoped_services, viewer_name, [("success", 10), ("failure", 0)])
    theirs = _key_with_traffic(
        scoped_services, other_name, [("success", 100), ("failure", 0), ("failure", 0)]
    )
    with scoped_services.db.session() as session:  # a call no key can be blamed for
        record(session, AuditAction.API_CHAT_COMPLETION, outcome="failure", actor="anonymous")

    page = viewer.get("/").text
    assert f'data-key="{mine}"' in page
    assert theirs not in page
    assert _figures(page) == {"requests-hour": 2, "errors-hour": 1, "tokens-today": 10}
    assert _figures(other.get("/").text) == {
        "requests-hour": 3,
        "errors-hour": 2,
        "tokens-today": 100,
    }

    everything = admin.get("/").text
    assert f'data-key="{mine}"' in everything and f'data-key="{theirs}"' in everything
    assert _figures(everything) == {"requests-hour": 6, "errors-hour": 4, "tokens-today": 110}
