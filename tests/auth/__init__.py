"""Helpers shared by the bearer-authentication tests."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, g, request
from sqlalchemy import select

from appliance.api import app as api_app
from appliance.api import context as ctx
from appliance.api import oauth
from appliance.api.app import create_app
from appliance.auth.api_keys import create_api_key
from appliance.auth.bearer import authenticate_bearer
from appliance.auth.principal import bearer_token
from appliance.models import Role, User
from appliance.services import Services
from tests.conftest import unique


@dataclass
class Client:
    username: str
    key: str  # the full API key: the client_secret
    prefix: str  # its public id: the client_id
    key_id: int


def new_client(
    services: Services, role: str = "app", models: str = "*", expires_days: int | None = None
) -> Client:
    """A service account (no password: no argon2 cost per test) with one API key."""
    with services.db.session() as session:
        user = User(
            username=unique("svc"),
            roles=list(session.scalars(select(Role).where(Role.name == role))),
        )
        session.add(user)
        session.flush()
        new = create_api_key(session, user, "oauth", models=models, expires_days=expires_days)
    return Client(user.username, new.plaintext, new.key.prefix, new.key.id)


def _authenticate() -> None:
    """The wiring proposed for appliance/api/app.py:authenticate(), until the lead makes it."""
    if request.endpoint in api_app.PUBLIC_ENDPOINTS or request.endpoint == "oauth.token":
        return
    token = bearer_token(request.headers.get("Authorization"))
    services = ctx.state().services
    with services.db.session() as session:
        g.principal = authenticate_bearer(session, token, services, oauth.bearer_verifiers())


def gateway_app(services: Services) -> Flask:
    """The API app with the OAuth blueprint and bearer authentication (wired here if the
    factory does not do it yet)."""
    app = create_app(services=services)
    if "oauth" not in app.blueprints:
        app.register_blueprint(oauth.bp)
        hooks = app.before_request_funcs[None]
        hooks[hooks.index(api_app.authenticate)] = _authenticate
    return app
