"""Hostile input to the portal: a precise 4xx on a rendered page, never a 500 or a traceback,
and nothing written.

Ids too large for the database's integers in the URL, very deep YAML in the policy editor,
and very deep JSON (or a lone surrogate) in an uploaded dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter
from werkzeug.test import TestResponse

from appliance.models import AuditEvent, FinetuneRun
from appliance.portal.app import create_app
from appliance.services import Services
from appliance.untrusted import MAX_DEPTH
from tests.portal.helpers import csrf_token, sign_in
from tests.portal.test_finetune_pages import (  # noqa: F401 (ft is a fixture)
    Setup,
    counts,
    ft,
    jsonl,
    upload,
)

HUGE = "99999999999999999999"  # past a 64-bit integer
INT32_PAST = str(2**31)  # past PostgreSQL's integer
INT64_PAST = str(2**63)  # past SQLite's integer


def assert_error_page(response: TestResponse, status: int) -> str:
    assert response.status_code == status, response.text[:500]
    assert response.mimetype == "text/html"
    assert "Traceback" not in response.text
    assert re.search(r"Request id", response.text, re.I), "not the rendered error page"
    return response.text


def audit_count(services: Services) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count(AuditEvent.seq))) or 0


@pytest.fixture(params=["postgresql", "sqlite"])
def services(request: pytest.FixtureRequest) -> Services:
    name = "pg_services" if request.param == "postgresql" else "sqlite_services"
    found: Services = request.getfixturevalue(name)
    return found


@pytest.fixture()
def admin(services: Services) -> FlaskClient:
    client = create_app(services=services).test_client()
    sign_in(client, services, ["admin"])
    return client


# --- ids too large for the database ---------------------------------------------------


@pytest.mark.parametrize("number", [HUGE, INT64_PAST, INT32_PAST, "1" + "0" * 5000])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/{n}"),
        ("POST", "/users/{n}/roles"),
        ("GET", "/keys/{n}/revoke"),
        ("POST", "/keys/{n}/revoke"),
    ],
)
def test_ids_past_the_database_integers_are_404(
    admin: FlaskClient, services: Services, method: str, path: str, number: str
) -> None:
    token = csrf_token(admin.get("/keys").text)
    before = audit_count(services)
    response = admin.open(path.format(n=number), method=method, data={"csrf_token": token})
    assert_error_page(response, 404)
    assert audit_count(services) == before


@pytest.mark.parametrize(
    "version", [f"v{HUGE}", HUGE, f"v{INT64_PAST}", f"v{INT32_PAST}", "v\u00b2", "v\u0661"]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/finetune/{alias}/runs/{v}"),
        ("GET", "/finetune/{alias}/runs/{v}/status"),
        ("GET", "/finetune/{alias}/runs/{v}/promote"),
        ("POST", "/finetune/{alias}/runs/{v}/promote"),
        ("POST", "/finetune/{alias}/runs/{v}/rollback"),
    ],
)
def test_fine_tune_versions_past_the_database_integers_are_404(
    ft: Setup,  # noqa: F811 (the fixture imported above)
    method: str,
    path: str,
    version: str,
) -> None:
    client = ft.app.test_client()
    sign_in(client, ft.services, ["operator"])
    token = csrf_token(client.get("/finetune").text)
    before = audit_count(ft.services)
    response = client.open(
        path.format(alias=ft.alias, v=version), method=method, data={"csrf_token": token}
    )
    if path.endswith("/status"):  # polled by the page: JSON, but still no 500
        assert response.status_code == 404, response.text[:300]
        assert "Traceback" not in response.text
    else:
        assert_error_page(response, 404)
    assert audit_count(ft.services) == before
    with ft.services.db.session() as session:
        assert not session.scalars(select(FinetuneRun).where(FinetuneRun.alias == ft.alias)).all()


# --- deep YAML in the policy editor ---------------------------------------------------

DEEP_YAML = [
    "[" * 100_000,  # flow style, unterminated
    "x: " + "[" * 5_000 + "]" * 5_000 + "\n",
    "- " * 5_000 + "x\n",  # block style, one line
    "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v\n",
]


@pytest.fixture()
def sqlite_admin(sqlite_services: Services) -> Iterator[tuple[FlaskClient, Services]]:
    client = create_app(services=sqlite_services).test_client()
    sign_in(client, sqlite_services, ["admin"])
    yield client, sqlite_services


def policy_form(client: FlaskClient, name: str) -> dict[str, str]:
    page = client.get(f"/policies/{name}")
    assert page.status_code == 200
    base = re.search(r'name="base"[^>]*value="([0-9a-f]{64})"', page.text)
    assert base
    return {"csrf_token": csrf_token(page.text), "base": base.group(1)}


@pytest.mark.parametrize("text", DEEP_YAML, ids=["flow-open", "flow", "block-line", "block"])
@pytest.mark.parametrize("name", ["rbac.yaml", "desensitization.yaml", "finetune.yaml"])
@pytest.mark.parametrize("action", ["preview", "save"])
def test_deep_yaml_in_the_policy_editor_is_400(
    sqlite_admin: tuple[FlaskClient, Services], name: str, text: str, action: str
) -> None:
    client, services = sqlite_admin
    policies = services.settings.effective_policies_dir
    before = policies.joinpath(name).read_text()
    events = audit_count(services)
    url = f"/policies/{name}/preview" if action == "preview" else f"/policies/{name}"
    response = client.post(url, data={**policy_form(client, name), "text": text})
    assert response.status_code == 400, response.text[:500]
    assert "Traceback" not in response.text
    assert f"nested deeper than {MAX_DEPTH} levels" in response.text
    assert "Save and apply" not in response.text
    assert policies.joinpath(name).read_text() == before
    assert audit_count(services) == events


def test_policy_at_the_depth_limit_is_checked_as_usual(
    sqlite_admin: tuple[FlaskClient, Services],
) -> None:
    """Deep but within the limit: the loader's own verdict (an unknown key), a 200 page."""
    client, _ = sqlite_admin
    text = "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH - 1)) + "  " * MAX_DEPTH + "v\n"
    response = client.post(
        "/policies/rbac.yaml/preview", data={**policy_form(client, "rbac.yaml"), "text": text}
    )
    assert response.status_code == 200
    assert "Not valid:" in response.text and "nested deeper" not in response.text


# --- deep JSON in a dataset upload ----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"[" * 100_000, f"line 2: JSON is nested deeper than {MAX_DEPTH} levels"),
        (b"[" * 5_000 + b"]" * 5_000, f"line 2: JSON is nested deeper than {MAX_DEPTH} levels"),
        (
            b'{"messages": [{"role": "user", "content": '
            + b"[" * 300
            + b"]" * 300
            + b'}, {"role": "assistant", "content": "a"}]}',
            f"line 2: JSON is nested deeper than {MAX_DEPTH} levels",
        ),
        (
            b'{"messages": [{"role": "user", "content": "q \\ud800"}, '
            b'{"role": "assistant", "content": "a"}]}',
            "line 2: invalid value for &#39;messages.0.content&#39;: the string holds a lone "
            "surrogate (\\ud800)",
        ),
    ],
    ids=["open", "closed", "in-a-record", "lone-surrogate"],
)
def test_deep_json_in_a_dataset_upload_is_400(
    ft: Setup,  # noqa: F811 (the fixture imported above)
    line: bytes,
    needle: str,
) -> None:
    client = ft.app.test_client()
    sign_in(client, ft.services, ["operator"])
    before = counts(ft.services, ft.alias)
    response = upload(client, ft.alias, jsonl(1) + line + b"\n" + jsonl(1))
    assert response.status_code == 400, response.text[:500]
    assert "Traceback" not in response.text
    assert needle in response.text
    assert 'data-testid="error-file"' in response.text
    assert counts(ft.services, ft.alias) == before


def test_every_int_in_a_portal_url_is_bounded(pg_services: Services) -> None:
    """Every portal route taking an int uses the bounded converter."""
    app: Flask = create_app(services=pg_services)
    converters = [
        (rule.rule, converter)
        for rule in app.url_map.iter_rules()
        for converter in rule._converters.values()
        if isinstance(converter, IntegerConverter)
    ]
    assert {rule for rule, _ in converters} >= {"/users/<int:user_id>", "/keys/<int:key_id>/revoke"}
    for rule, converter in converters:
        assert converter.max is not None and converter.max <= 2**31 - 1, rule
