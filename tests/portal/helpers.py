"""Signing in to the portal in tests: users of any role, TOTP for the roles that need it."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import timedelta

import pyotp
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.test import TestResponse

from appliance.auth import sessions, totp
from appliance.auth.sealing import seal
from appliance.auth.users import create_user, get_user
from appliance.models import PortalSession, User, utcnow
from appliance.services import Services
from tests.conftest import unique

PASSWORD = "correct-horse-battery-staple"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token input on the page"
    return match.group(1)


def make_user(services: Services, roles: list[str], password: str = PASSWORD) -> str:
    with services.db.session() as session:
        user, _ = create_user(session, unique("u"), roles, password=password)
        return user.username


def enrol_totp(services: Services, username: str) -> str:
    """Give the user an authenticator (no step used yet); returns its secret."""
    secret = pyotp.random_base32()
    with services.db.session() as session:
        user = get_user(session, username)
        user.totp_secret = seal(
            services.derived_key(totp.KEY_PURPOSE), secret, f"user:{user.id}:totp"
        )
        user.totp_enabled_at = utcnow()
        user.totp_last_step = None
    return secret


def code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * totp.STEP_S)


def login(client: FlaskClient, username: str, password: str, path: str = "/login") -> TestResponse:
    token = csrf_token(client.get("/login").text)
    data = {"csrf_token": token, "username": username, "password": password}
    return client.post(path, data=data)


def sign_in(client: FlaskClient, services: Services, roles: list[str]) -> str:
    """A new user with ``roles``, signed in on ``client`` (with TOTP where required)."""
    username = make_user(services, roles)
    secret = enrol_totp(services, username) if services.rbac.totp_required(roles) else None
    response = login(client, username, PASSWORD)
    assert response.status_code == 302, response.text
    if secret is not None:
        assert response.headers["Location"] == "/login/totp"
        token = csrf_token(client.get("/login/totp").text)
        response = client.post("/login/totp", data={"csrf_token": token, "code": code(secret)})
        assert response.status_code == 302 and response.headers["Location"] == "/"
    return username


# Server-side sessions -------------------------------------------------------------------


def session_token(client: FlaskClient) -> str | None:
    """The token the client's session cookie carries (signed in), or None."""
    with client.session_transaction() as session:
        token = session.get("sid")
    return str(token) if token else None


def session_row(client: FlaskClient, services: Services) -> PortalSession | None:
    """The server-side row of the client's session, or None (not signed in, ended)."""
    token = session_token(client)
    if token is None:
        return None
    with services.db.session() as db:
        return sessions.find(db, token)


def forge_session(client: FlaskClient, services: Services, user_id: int, mfa: str) -> None:
    """Sign ``client`` in as ``user_id`` without the login forms (a live session row)."""
    with services.db.session() as db:
        user = db.get(User, user_id)
        assert user is not None
        _, token = sessions.create(db, user, auth_source="local", mfa=mfa)
    with client.session_transaction() as session:
        session["sid"] = token
        session.permanent = True


def age_session(
    client: FlaskClient,
    services: Services,
    *,
    signed_in: timedelta = timedelta(0),
    idle: timedelta = timedelta(0),
) -> None:
    """Move the client's session back in time: its sign-in by ``signed_in``, last request
    by ``idle``."""
    row = session_row(client, services)
    assert row is not None, "the client is not signed in"
    with services.db.session() as db:
        db.execute(
            update(PortalSession)
            .where(PortalSession.id == row.id)
            .values(created_at=row.created_at - signed_in, last_seen_at=row.last_seen_at - idle)
        )


def with_settings(services: Services, **changes: object) -> Services:
    """The same services (database, policies) under changed settings."""
    return dataclasses.replace(services, settings=services.settings.model_copy(update=changes))
