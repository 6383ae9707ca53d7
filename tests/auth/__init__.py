"""Helpers shared by the bearer-authentication tests."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select

from appliance.api.app import create_app
from appliance.auth.api_keys import create_api_key
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


def gateway_app(services: Services) -> Flask:
    """The API app, OAuth token endpoint and bearer authentication included."""
    return create_app(services=services)
