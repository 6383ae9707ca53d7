"""Signing in to the portal in tests: users of any role, TOTP for the roles that need it."""

from __future__ import annotations

import re
import time

import pyotp
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.auth import totp
from appliance.auth.sealing import seal
from appliance.auth.users import create_user, get_user
from appliance.models import utcnow
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
