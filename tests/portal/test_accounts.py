"""Local accounts: lockout, TOTP enrolment and sign-in, password policy, session limits."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from appliance.auth.users import get_user, password_problem
from appliance.models import AuditEvent
from appliance.portal.app import create_app
from appliance.portal.auth import INVALID_LOGIN
from appliance.services import Services
from tests.portal.helpers import (
    PASSWORD,
    age_session,
    code,
    csrf_token,
    enrol_totp,
    login,
    make_user,
    session_row,
    sign_in,
    with_settings,
)

LOCKOUT_AFTER = 5  # the default of the Settings page


@pytest.fixture()
def app(pg_services: Services) -> Flask:
    return create_app(services=pg_services)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def locking_client(pg_services: Services) -> FlaskClient:
    """A portal with the hard lock (``login_throttle: lock``) instead of the back-off."""
    return create_app(services=with_settings(pg_services, login_throttle="lock")).test_client()


def actions(
    services: Services, *, actor: str | None = None, target: str | None = None
) -> list[str]:
    with services.db.session() as session:
        query = select(AuditEvent.action).order_by(AuditEvent.seq)
        if actor:
            query = query.where(AuditEvent.actor == actor)
        if target:
            query = query.where(AuditEvent.target == target)
        return list(session.scalars(query))


# Lockout (login_throttle: lock; the back-off is in test_throttle.py) -------------------


def test_lockout_after_repeated_failures_is_audited_and_holds(
    locking_client: FlaskClient, pg_services: Services
) -> None:
    client = locking_client
    username = make_user(pg_services, ["operator"])
    for _ in range(LOCKOUT_AFTER):
        assert INVALID_LOGIN in login(client, username, "wrong-password-123").text
    assert actions(pg_services, actor=username).count("auth.login.failed") == LOCKOUT_AFTER
    assert actions(pg_services, target=username) == ["auth.login.locked"]
    with pg_services.db.session() as session:
        assert get_user(session, username).locked_until is not None

    # The right password no longer opens the account, and the page does not say why.
    response = login(client, username, PASSWORD)
    assert response.status_code == 200 and INVALID_LOGIN in response.text
    with pg_services.db.session() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.actor == username).order_by(AuditEvent.seq.desc())
        ).first()
        assert event is not None and event.details["reason"] == "locked"

    # An admin unlocks it (confirmation first), and it is audited.
    admin = app_client(pg_services)
    with pg_services.db.session() as session:
        user_id = get_user(session, username).id
    page = admin.get(f"/users/{user_id}/unlock")
    assert page.status_code == 200 and "Unlock" in page.text
    response = admin.post(f"/users/{user_id}/unlock", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 302
    assert "admin.user.unlock" in actions(pg_services, target=username)
    assert login(client, username, PASSWORD).status_code == 302


def app_client(services: Services) -> FlaskClient:
    client = create_app(services=services).test_client()
    sign_in(client, services, ["admin"])
    return client


# TOTP -------------------------------------------------------------------------------


def test_admin_must_enrol_totp_at_first_sign_in(client: FlaskClient, pg_services: Services) -> None:
    username = make_user(pg_services, ["admin"])
    response = login(client, username, PASSWORD)
    assert response.headers["Location"] == "/account/totp"
    # Until enrolled, every page leads to the enrolment.
    for path in ["/", "/users", "/settings", "/keys"]:
        assert client.get(path).headers["Location"] == "/account/totp"
    page = client.get("/account/totp")
    assert page.status_code == 200
    secret = page.text.split('data-secret="')[1].split('"')[0]
    with client.session_transaction() as session:
        assert "JBSW" not in str(session.get("totp_pending", ""))  # sealed, not the secret
        sid_before = session["sid"]

    token = csrf_token(page.text)
    wrong = client.post("/account/totp", data={"csrf_token": token, "code": "000000"})
    assert wrong.status_code == 200 and "That code is not valid" in wrong.text
    response = client.post("/account/totp", data={"csrf_token": token, "code": code(secret)})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    with client.session_transaction() as session:
        assert session["sid"] != sid_before
    row = session_row(client, pg_services)
    assert row is not None and row.mfa == "totp"
    assert client.get("/users").status_code == 200
    assert "auth.totp.enrol" in actions(pg_services, actor=username)

    # The next sign-in asks for a code; the one used to enrol cannot be replayed.
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/").text)})
    response = login(client, username, PASSWORD)
    assert response.headers["Location"] == "/login/totp"
    assert client.get("/").headers["Location"].startswith("/login")  # not signed in yet
    token = csrf_token(client.get("/login/totp").text)
    replay = client.post("/login/totp", data={"csrf_token": token, "code": code(secret)})
    assert replay.status_code == 200 and "That code is not valid" in replay.text
    response = client.post(
        "/login/totp", data={"csrf_token": token, "code": code(secret, steps_ahead=1)}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/users").status_code == 200
    events = actions(pg_services, actor=username)
    assert events.count("auth.login") == 2 and "auth.login.failed" in events


def test_wrong_totp_codes_lock_the_account(
    locking_client: FlaskClient, pg_services: Services
) -> None:
    client = locking_client
    username = make_user(pg_services, ["admin"])
    secret = enrol_totp(pg_services, username)
    login(client, username, PASSWORD)
    token = csrf_token(client.get("/login/totp").text)
    for _ in range(LOCKOUT_AFTER - 1):
        response = client.post("/login/totp", data={"csrf_token": token, "code": "123456"})
        assert response.status_code == 200
    response = client.post("/login/totp", data={"csrf_token": token, "code": "123456"})
    assert response.headers["Location"] == "/login"
    assert "auth.login.locked" in actions(pg_services, target=username)
    # Locked: even the right password is refused now, before any code is asked.
    response = login(client, username, PASSWORD)
    assert response.status_code == 200 and INVALID_LOGIN in response.text
    assert client.get("/login/totp").headers["Location"] == "/login"
    assert code(secret)  # the authenticator itself is fine


def test_totp_step_expires_and_needs_the_password_first(client: FlaskClient) -> None:
    assert client.get("/login/totp").headers["Location"] == "/login"
    with client.session_transaction() as session:
        session.update(pre_uid=1, pre_at=int(time.time()) - 301)
    assert client.get("/login/totp").headers["Location"] == "/login"


def test_granting_admin_during_a_session_asks_for_a_second_factor(
    client: FlaskClient, pg_services: Services
) -> None:
    username = sign_in(client, pg_services, ["operator"])
    assert client.get("/").status_code == 200
    with pg_services.db.session() as session:
        from appliance.auth.users import set_roles

        set_roles(session, get_user(session, username), ["admin"])
    assert client.get("/").headers["Location"] == "/login"
    assert "require a second factor" in client.get("/login").text


# Passwords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "5 different characters"),
        ("Password1234", "most common"),
        ("xx-carol-the-admin", "user name"),
        ("x" * 1025, "at most 1024"),
        ("a perfectly fine passphrase", None),
    ],
)
def test_password_policy(password: str, problem: str | None) -> None:
    found = password_problem(password, "carol-the-admin")
    assert (found is None) if problem is None else (problem in str(found))


def test_change_own_password(client: FlaskClient, pg_services: Services) -> None:
    username = sign_in(client, pg_services, ["developer"])
    page = client.get("/account")
    assert page.status_code == 200 and "Change your password" in page.text
    token = csrf_token(page.text)
    new = "a much better passphrase"

    def change(current: str, password: str, confirm: str) -> str:
        data = {"csrf_token": token, "current": current, "new": password, "confirm": confirm}
        return client.post("/account", data=data).text

    assert "This is not your current password." in change("nope-nope-nope", new, new)
    assert "The two passwords differ." in change(PASSWORD, new, new + "x")
    assert "needs at least 12 characters" in change(PASSWORD, "short", "short")
    response = client.post(
        "/account", data={"csrf_token": token, "current": PASSWORD, "new": new, "confirm": new}
    )
    assert response.status_code == 302
    assert "auth.password.change" in actions(pg_services, actor=username)
    fresh = create_app(services=pg_services).test_client()
    assert login(fresh, username, PASSWORD).status_code == 200  # the old one no longer works
    assert login(fresh, username, new).status_code == 302


# Sessions -----------------------------------------------------------------------------


def test_absolute_session_timeout(client: FlaskClient, pg_services: Services) -> None:
    sign_in(client, pg_services, ["auditor"])
    age_session(client, pg_services, signed_in=timedelta(hours=12, seconds=5))  # the default
    assert client.get("/").headers["Location"] == "/login"
    assert "maximum length" in client.get("/login").text


def test_csrf_is_required_on_every_admin_form(client: FlaskClient, pg_services: Services) -> None:
    sign_in(client, pg_services, ["admin"])
    for path, data in [
        ("/keys", {"name": "x", "models": "*"}),
        ("/users", {"username": "x", "roles": "auditor"}),
        ("/settings", {"lockout_threshold": "5"}),
        ("/account", {"current": "x"}),
    ]:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "The form has expired or did not come from this site." in response.text
    other_session_token = csrf_token(
        create_app(services=pg_services).test_client().get("/login").text
    )
    response = client.post("/keys", data={"csrf_token": other_session_token, "name": "x"})
    assert response.status_code == 400
