"""The portal's pages through Flask's test client: keys, users, settings, policies,
dashboard, audit and models. Each change is audited; bad input gets field errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from appliance.audit.events import AuditAction, record
from appliance.auth.api_keys import authenticate_api_key
from appliance.auth.users import get_user
from appliance.errors import AuthenticationFailed
from appliance.models import (
    ApiKey,
    AuditEvent,
    Model,
    ModelAlias,
    PortalSetting,
    User,
    utcnow,
)
from appliance.portal import site_settings, stats
from appliance.portal.app import create_app
from appliance.services import Services
from appliance.upstream.aliases import add_alias
from appliance.upstream.registry import add_model
from tests.conftest import scratch_services, unique
from tests.portal.helpers import csrf_token, sign_in


@pytest.fixture()
def app(pg_services: Services) -> Flask:
    return create_app(services=pg_services)


def client_as(app: Flask, services: Services, roles: list[str]) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, sign_in(client, services, roles)


def submit(client: FlaskClient, page: str, action: str, data: dict[str, object]):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **data})


def last_event(services: Services, action: str, target: str | None = None) -> AuditEvent:
    with services.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        if target is not None:
            query = query.where(AuditEvent.target == target)
        event = session.scalars(query.order_by(AuditEvent.seq.desc())).first()
        assert event is not None, f"no {action} event"
        session.expunge(event)
        return event


# API keys ---------------------------------------------------------------------------


def test_developer_manages_own_keys_only(app: Flask, pg_services: Services) -> None:
    dev, dev_name = client_as(app, pg_services, ["developer"])
    other, _ = client_as(app, pg_services, ["developer"])

    errors = submit(dev, "/keys", "/keys", {"name": "", "models": "bad glob!", "expires_days": 0})
    assert errors.status_code == 200
    assert "This field is required." in errors.text
    assert "Model names or globs" in errors.text
    assert "Number must be between 1 and 3650." in errors.text
    refused = submit(dev, "/keys", "/keys", {"name": "x", "owner": "someone-else", "models": "*"})
    assert "You can only create keys for yourself." in refused.text

    created = submit(
        dev, "/keys", "/keys", {"name": "mine", "models": "tiny*, other", "expires_days": 7}
    )
    assert created.status_code == 200
    plaintext = re.search(r'data-testid="new-key">([^<]+)<', created.text)
    assert plaintext
    with pg_services.db.session() as session:
        key = authenticate_api_key(session, plaintext.group(1))
        prefix, key_id = key.prefix, key.id
        assert (key.user.username, key.models) == (dev_name, "tiny*,other")
    event = last_event(pg_services, AuditAction.KEY_CREATE, prefix)
    assert event.actor == dev_name and event.details["owner"] == dev_name
    assert plaintext.group(1) not in str(event.details)

    assert prefix in dev.get("/keys").text
    assert plaintext.group(1) not in dev.get("/keys").text
    assert prefix not in other.get("/keys").text
    assert other.get(f"/keys/{key_id}/revoke").status_code == 404

    confirm = dev.get(f"/keys/{key_id}/revoke")
    assert confirm.status_code == 200 and "This cannot be undone." in confirm.text
    done = dev.post(f"/keys/{key_id}/revoke", data={"csrf_token": csrf_token(confirm.text)})
    assert done.status_code == 302
    assert f"The key {prefix}" in dev.get("/keys").text
    assert last_event(pg_services, AuditAction.KEY_REVOKE, prefix).actor == dev_name
    with pg_services.db.session() as session, pytest.raises(AuthenticationFailed):
        authenticate_api_key(session, plaintext.group(1))
    assert prefix in dev.get("/keys?state=revoked").text
    assert prefix not in dev.get("/keys?state=active").text


def test_admin_creates_keys_for_others_and_sees_all(app: Flask, pg_services: Services) -> None:
    admin, _ = client_as(app, pg_services, ["admin"])
    _, dev_name = client_as(app, pg_services, ["developer"])
    response = submit(
        admin, "/keys", "/keys", {"name": "for-dev", "owner": dev_name, "models": "*"}
    )
    assert response.status_code == 200 and "Key created" in response.text
    assert dev_name in admin.get("/keys").text
    missing = submit(
        admin, "/keys", "/keys", {"name": "x", "owner": "nobody-at-all", "models": "*"}
    )
    assert "There is no active user named" in missing.text


def test_key_list_paginates(app: Flask, pg_services: Services) -> None:
    dev, dev_name = client_as(app, pg_services, ["developer"])
    from appliance.auth.api_keys import create_api_key

    with pg_services.db.session() as session:
        user = get_user(session, dev_name)
        for i in range(27):
            create_api_key(session, user, f"k{i}")
    first = dev.get("/keys")
    assert "Page 1 of 2 (27)" in first.text and first.text.count("<tr data-key=") == 25
    second = dev.get("/keys?page=2")
    assert second.text.count("<tr data-key=") == 2 and 'rel="prev"' in second.text
    assert dev.get("/keys?page=abc").status_code == 200


# Users ------------------------------------------------------------------------------


def test_admin_creates_updates_and_deactivates_a_user(app: Flask, pg_services: Services) -> None:
    admin, admin_name = client_as(app, pg_services, ["admin"])
    name = unique("dora")
    errors = submit(admin, "/users", "/users", {"username": "bad name!"})
    assert "Letters, digits" in errors.text and "Choose at least one role." in errors.text
    created = submit(admin, "/users", "/users", {"username": name, "roles": ["developer"]})
    assert created.status_code == 200 and 'data-testid="new-password"' in created.text
    assert last_event(pg_services, AuditAction.USER_CREATE, name).actor == admin_name
    duplicate = submit(admin, "/users", "/users", {"username": name, "roles": ["developer"]})
    assert "already exists" in duplicate.text

    with pg_services.db.session() as session:
        user_id = get_user(session, name).id
    detail = f"/users/{user_id}"
    assert name in admin.get(detail).text
    response = submit(admin, detail, f"{detail}/roles", {"roles": ["operator", "auditor"]})
    assert response.status_code == 302
    event = last_event(pg_services, AuditAction.USER_UPDATE, name)
    assert (event.details["roles_before"], event.details["roles"]) == (
        ["developer"],
        ["auditor", "operator"],
    )

    confirm = admin.get(f"{detail}/deactivate")
    assert "Deactivate" in confirm.text and "stop working at once" in confirm.text
    admin.post(f"{detail}/deactivate", data={"csrf_token": csrf_token(confirm.text)})
    with pg_services.db.session() as session:
        user = get_user(session, name)
        assert (user.is_active, user.deactivated_reason) == (False, "admin")
    assert last_event(pg_services, AuditAction.USER_DEACTIVATE, name).actor == admin_name

    reset = admin.get(f"{detail}/reset-password")
    new = admin.post(f"{detail}/reset-password", data={"csrf_token": csrf_token(reset.text)})
    assert 'data-testid="new-password"' in new.text
    assert last_event(pg_services, AuditAction.PASSWORD_CHANGE, name).details["by_admin"]


def test_admin_cannot_lock_themself_out(app: Flask, pg_services: Services) -> None:
    admin, admin_name = client_as(app, pg_services, ["admin"])
    with pg_services.db.session() as session:
        user_id = get_user(session, admin_name).id
    response = submit(admin, f"/users/{user_id}", f"/users/{user_id}/roles", {"roles": ["auditor"]})
    assert "You cannot take away your own user management." in response.text
    page = admin.get(f"/users/{user_id}/deactivate")
    admin.post(f"/users/{user_id}/deactivate", data={"csrf_token": csrf_token(page.text)})
    assert "You cannot deactivate your own account." in admin.get(f"/users/{user_id}").text
    with pg_services.db.session() as session:
        assert get_user(session, admin_name).is_active


def test_auditor_reads_users_but_cannot_change_them(app: Flask, pg_services: Services) -> None:
    auditor, _ = client_as(app, pg_services, ["auditor"])
    page = auditor.get("/users")
    assert page.status_code == 200 and "Create a local account" not in page.text
    assert auditor.get("/role-mappings").status_code == 200
    assert submit(auditor, "/users", "/users", {"username": "x"}).status_code == 403


# Settings (own home: the settings row is per database) ------------------------------


@pytest.fixture()
def sqlite_admin(sqlite_services: Services) -> tuple[FlaskClient, Services]:
    client = create_app(services=sqlite_services).test_client()
    sign_in(client, sqlite_services, ["admin"])
    return client, sqlite_services


def test_settings_are_validated_sealed_and_audited(
    sqlite_admin: tuple[FlaskClient, Services],
) -> None:
    client, services = sqlite_admin
    base = {
        "sso_display_name": "Corporate SSO",
        "sso_scopes": "openid profile groups",
        "lockout_threshold": 3,
        "lockout_minutes": 10,
        "session_absolute_hours": 8,
    }
    bad = submit(
        client,
        "/settings",
        "/settings",
        {
            **base,
            "sso_enabled": "y",
            "sso_issuer": "http://idp.example.com",
            "lockout_threshold": 0,
        },
    )
    assert "Must use https" in bad.text
    assert "Input should be greater than or equal to 1" in bad.text
    incomplete = submit(client, "/settings", "/settings", {**base, "sso_enabled": "y"})
    assert incomplete.text.count("Required to offer single sign-on.") == 3
    good = submit(
        client,
        "/settings",
        "/settings",
        {
            **base,
            "sso_enabled": "y",
            "sso_issuer": "https://idp.example.com/realms/corp/",
            "sso_client_id": "portal",
            "sso_client_secret": "the-client-secret-value",
        },
    )
    assert good.status_code == 302
    with services.db.session() as session:
        row = session.get(PortalSetting, site_settings.ROW_ID)
        assert row is not None and "the-client-secret-value" not in str(row.sealed_client_secret)
        settings = site_settings.load(session)
        assert settings.sso_issuer == "https://idp.example.com/realms/corp"
        assert settings.lockout_threshold == 3
        key = services.derived_key(site_settings.KEY_PURPOSE)
        assert site_settings.client_secret(session, key) == "the-client-secret-value"
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.SETTINGS_CHANGE)
        ).one()
        assert "sso_client_secret" in event.details["changed"]
        assert "the-client-secret-value" not in str(event.details)
    page = client.get("/settings").text
    assert "the-client-secret-value" not in page and "(set)" in page
    # The login page now offers SSO.
    assert "Corporate SSO" in create_app(services=services).test_client().get("/login").text


# Policies (own home: edits write files and change the running policy) ---------------


def test_policy_edit_shows_a_diff_then_saves_atomically_and_audits(
    sqlite_admin: tuple[FlaskClient, Services],
) -> None:
    client, services = sqlite_admin
    page = client.get("/policies/rbac.yaml")
    assert page.status_code == 200
    text = services.settings.effective_policies_dir.joinpath("rbac.yaml").read_text()
    base = re.search(r'name="base"[^>]*value="([0-9a-f]{64})"', page.text)
    assert base

    broken = client.post(
        "/policies/rbac.yaml/preview",
        data={
            "csrf_token": csrf_token(page.text),
            "base": base.group(1),
            "text": text + "  x: [\n",
        },
    )
    assert "Not valid:" in broken.text and "rbac.yaml:" in broken.text
    assert "Save and apply" not in broken.text

    edited = text.replace(
        "    compliance: [auditor]\n", "    compliance: [auditor]\n    ops: [operator]\n"
    )
    assert edited != text
    preview = client.post(
        "/policies/rbac.yaml/preview",
        data={"csrf_token": csrf_token(page.text), "base": base.group(1), "text": edited},
    )
    assert "Valid." in preview.text and "+    ops: [operator]" in preview.text

    stale = client.post(
        "/policies/rbac.yaml",
        data={"csrf_token": csrf_token(page.text), "base": "0" * 64, "text": edited},
    )
    assert stale.status_code == 302
    assert "changed since you opened it" in client.get("/policies/rbac.yaml").text

    saved = client.post(
        "/policies/rbac.yaml",
        data={"csrf_token": csrf_token(page.text), "base": base.group(1), "text": edited},
    )
    assert saved.status_code == 302
    written = services.settings.home / "policies" / "rbac.yaml"
    assert written.read_text() == edited
    assert (services.settings.home / "policies" / "desensitization.yaml").exists()
    assert services.settings.effective_policies_dir == services.settings.home / "policies"
    assert services.rbac.sso.roles["ops"] == ("operator",)
    with services.db.session() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
    assert AuditAction.POLICY_CHANGE in actions and AuditAction.ROLE_MAPPING_CHANGE in actions


def test_mapping_change_deactivates_sso_users_left_without_a_role(
    sqlite_admin: tuple[FlaskClient, Services],
) -> None:
    from appliance.auth.sso import provision

    client, services = sqlite_admin
    with services.db.session() as session:
        outcome = provision(
            session, services.rbac, "https://idp.example", {"sub": "s-1", "groups": ["developers"]}
        )
        assert outcome.created and outcome.roles == ["developer"]
    page = client.get("/policies/rbac.yaml")
    base = re.search(r'name="base"[^>]*value="([0-9a-f]{64})"', page.text)
    assert base
    text = services.settings.effective_policies_dir.joinpath("rbac.yaml").read_text()
    edited = text.replace("    developers: [developer]\n", "")
    client.post(
        "/policies/rbac.yaml",
        data={"csrf_token": csrf_token(page.text), "base": base.group(1), "text": edited},
    )
    with services.db.session() as session:
        user = session.scalars(select(User).where(User.sso_subject == "s-1")).one()
        assert (user.is_active, user.deactivated_reason, user.role_names) == (
            False,
            "sso_mapping",
            [],
        )


def test_try_it_desensitizes_as_the_api_would(app: Flask, pg_services: Services) -> None:
    operator, _ = client_as(app, pg_services, ["operator"])
    sample = "Call 13812345678 or mail li.lei@example.com"
    response = submit(operator, "/policies", "/policies/try", {"sample": sample, "role": ""})
    assert response.status_code == 200
    output = re.search(r'data-testid="try-output">([^<]*)<', response.text)
    assert output and "13812345678" not in output.group(1)
    assert "li.lei@example.com" not in output.group(1)
    assert "CN_PHONE" in response.text
    empty = submit(operator, "/policies", "/policies/try", {"sample": ""})
    assert "This field is required." in empty.text
    assert operator.post("/policies/rbac.yaml/preview").status_code == 403  # read-only role


# Dashboard, audit, models -------------------------------------------------------------


@pytest.fixture()
def dash_services(tmp_path: Path) -> Iterator[Services]:
    """A database of its own: the busiest keys of the last day are exactly this test's."""
    with scratch_services(tmp_path / "home", "appliance_dash") as services:
        yield services


@pytest.fixture()
def api_events(dash_services: Services) -> Iterator[str]:
    """API audit events of one key over the last hour and days."""
    prefix = f"sk-app-{unique('x')[-8:]}"
    now = utcnow()
    with dash_services.db.session() as session:
        for minutes, outcome, tokens in [(1, "success", 30), (2, "failure", 0), (70, "success", 5)]:
            event = record(
                session,
                AuditAction.API_CHAT_COMPLETION,
                outcome=outcome,
                actor="dash",
                api_key_prefix=prefix,
                prompt_tokens=tokens,
                completion_tokens=tokens,
            )
            event.timestamp = now - timedelta(minutes=minutes)
    yield prefix


def test_dashboard_counts_traffic_from_audit_events(
    dash_services: Services, api_events: str
) -> None:
    with dash_services.db.session() as session:
        traffic = stats.traffic(session)
    assert traffic.requests_hour >= 2 and traffic.errors_hour >= 1
    assert (traffic.requests_day >= 3 and traffic.tokens_today >= 60) or traffic.tokens_per_day
    mine = next(k for k in traffic.top_keys if k.prefix == api_events)
    assert (mine.requests, mine.errors, mine.tokens) == (3, 1, 70)
    assert len(traffic.per_minute) == 60 and sum(p.value for p in traffic.per_minute) >= 2
    chart = stats.bar_chart(traffic.per_minute)
    assert max(bar.height for bar in chart.bars) > 0

    # Every key's traffic is for a viewer who may see every key (/keys' rule: admin); an
    # operator sees only their own keys' (tests/portal/test_dashboard_scope.py).
    operator, _ = client_as(create_app(services=dash_services), dash_services, ["admin"])
    html = operator.get("/").text
    assert f'<tr data-key="{api_events}">' in html
    assert html.count('<rect class="bar"') == 60 + 14


def test_audit_list_filters_and_paginates(app: Flask, pg_services: Services) -> None:
    auditor, auditor_name = client_as(app, pg_services, ["auditor"])
    page = auditor.get("/audit?action=auth.login&actor=" + auditor_name)
    assert page.status_code == 200
    assert page.text.count("<tr data-action=") == 1
    everything = auditor.get("/audit")
    assert everything.text.count("<tr data-action=") == 50 or "in all" in everything.text
    assert auditor.get("/audit?page=2").status_code == 200
    assert auditor.get("/audit?action=%25").text.count("<tr data-action=") == 0  # no LIKE wildcards


def test_operator_moves_canary_weights(app: Flask, pg_services: Services) -> None:
    name = unique("m")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=["http://127.0.0.1:9/v1"])
        alias = add_alias(
            session, f"{name}-alias", [(name, None, 90, "v1"), (name, "lora", 10, "v2")]
        )
        ids = [t.id for t in alias.targets]
    try:
        operator, operator_name = client_as(app, pg_services, ["operator"])
        page = operator.get("/models")
        assert f"{name}-alias" in page.text
        response = operator.post(
            f"/models/aliases/{name}-alias/weights",
            data={
                "csrf_token": csrf_token(page.text),
                f"weight-{ids[0]}": "50",
                f"weight-{ids[1]}": "50",
            },
        )
        assert response.status_code == 302
        event = last_event(pg_services, AuditAction.MODEL_ALIAS_SET, f"{name}-alias")
        assert event.actor == operator_name
        assert event.details["weights"] == {name: 50, f"{name}+lora": 50}
        bad = operator.post(
            f"/models/aliases/{name}-alias/weights",
            data={"csrf_token": csrf_token(page.text), f"weight-{ids[0]}": "x"},
        )
        assert bad.status_code == 302 and "whole number" in operator.get("/models").text
        auditor, _ = client_as(app, pg_services, ["auditor"])
        assert 'name="weight-' not in auditor.get("/models").text
    finally:
        with pg_services.db.session() as session:
            session.execute(delete(ModelAlias).where(ModelAlias.name == f"{name}-alias"))
            session.execute(delete(Model).where(Model.name == name))


def test_the_models_page_shows_how_vllm_serves_each_model(
    app: Flask, pg_services: Services
) -> None:
    r1, plain = unique("deepseek-r1-distill"), unique("plain")
    with pg_services.db.session() as session:
        add_model(session, r1, upstream_urls=["http://127.0.0.1:9"], vllm={"max_model_len": 8192})
        add_model(session, plain, upstream_urls=["http://127.0.0.1:9"])
    try:
        operator, _ = client_as(app, pg_services, ["operator"])
        page = operator.get("/models").text
        row = page.split(f'<tr data-model="{r1}">', 1)[1].split("</tr>", 1)[0]
        assert "<code>reasoning_parser=deepseek_r1</code>" in row
        assert "<code>max_model_len=8192</code>" in row
        other = page.split(f'<tr data-model="{plain}">', 1)[1].split("</tr>", 1)[0]
        assert 'class="vllm-options"><span class="muted">none</span>' in other
    finally:
        with pg_services.db.session() as session:
            session.execute(delete(Model).where(Model.name.in_([r1, plain])))


def test_no_page_shows_a_traceback(app: Flask, pg_services: Services) -> None:
    admin, _ = client_as(app, pg_services, ["admin"])
    for path in [
        "/users/abc",
        "/policies/nope.yaml",
        "/keys/987654321/revoke?x=%00",
        "/users/99999999",
    ]:
        response = admin.get(path)
        assert response.status_code in {404}, path
        assert "Traceback" not in response.text
    assert ApiKey  # the models import stays used


def test_sso_accounts_are_listed_a_page_at_a_time(
    sqlite_admin: tuple[FlaskClient, Services],
) -> None:
    from appliance.auth.sso import provision

    client, services = sqlite_admin
    with services.db.session() as session:
        for n in range(30):
            provision(
                session, services.rbac, "https://idp.example",
                {"sub": f"page-{n:02d}", "groups": ["developers"]},
            )  # fmt: skip
    first, second = client.get("/role-mappings"), client.get("/role-mappings?page=2")
    assert first.text.count("data-user=") == 25 and second.text.count("data-user=") == 5
    assert "page=2" in first.text


def test_try_it_explains_what_was_and_was_not_taken(app: Flask, pg_services: Services) -> None:
    """An ID after 订单号 is let go, and the box says so (it used to pass it silently)."""
    operator, _ = client_as(app, pg_services, ["operator"])
    sample = "订单号 11010519491231002X，身份证号 110105194912310021，手机号：10012345678"
    response = submit(operator, "/policies", "/policies/try", {"sample": sample, "role": ""})
    assert response.status_code == 200
    table = re.search(r'data-testid="try-explain">(.*?)</table>', response.text, re.S)
    assert table is not None
    rows = re.findall(r"<tr class=\"(taken|not-taken)\">(.*?)</tr>", table.group(1), re.S)
    text = [(state, re.sub(r"<[^>]+>|\s+", " ", row)) for state, row in rows]
    assert text[0][0] == "not-taken" and "lowered -0.60 by keyword 订单号" in text[0][1]
    assert text[1][0] == "not-taken" and "check digit wrong" in text[1][1]
    assert text[2][0] == "taken" and "raised +0.60 by keyword 手机" in text[2][1]


def test_try_it_finds_names_and_addresses(app: Flask, pg_services: Services) -> None:
    operator, _ = client_as(app, pg_services, ["operator"])
    sample = "收件人：欧阳娜娜，地址：北京市海淀区中关村大街27号3幢2单元501室"
    response = submit(operator, "/policies", "/policies/try", {"sample": sample, "role": ""})
    output = re.search(r'data-testid="try-output">([^<]*)<', response.text)
    assert output is not None
    assert "欧阳娜娜" not in output.group(1) and "中关村大街" not in output.group(1)
    assert "PERSON" in response.text and "ADDRESS" in response.text
