"""Fixtures for the API app: a live gateway on PostgreSQL in front of the built-in engine."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from appliance.api.app import create_app
from appliance.auth.api_keys import create_api_key
from appliance.auth.users import create_user, sync_roles
from appliance.config import SHIPPED_POLICIES
from appliance.services import Services, build_services
from appliance.upstream.registry import add_model
from tests.api.vllm_standin import BASE, VllmStandIn
from tests.conftest import LiveServer, make_settings, unique


@pytest.fixture(scope="module")
def standin() -> Iterator[VllmStandIn]:
    """A recording vLLM stand-in (``tests/api/vllm_standin.py``), one per test module."""
    server = VllmStandIn()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def standin_model(pg_services: Services, standin: VllmStandIn) -> str:
    """A model of the registry served by the module's stand-in."""
    name = unique("standin")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[standin.url], served_name=BASE)
    return name


@pytest.fixture(scope="session")
def api_server(pg_services: Services) -> Iterator[LiveServer]:
    server = LiveServer(create_app(services=pg_services))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_alias(pg_services: Services, engine_server: LiveServer) -> str:
    """A registered model whose upstream is the live engine (served under another name)."""
    name = unique("tiny")
    with pg_services.db.session() as session:
        add_model(
            session, name, upstream_urls=[f"{engine_server.url}/v1"], served_name="tiny-served"
        )
    return name


@dataclass
class Caller:
    username: str
    key: str
    prefix: str


def new_caller(
    services: Services, role: str = "developer", models: str = "*", expires_days: int | None = None
) -> Caller:
    """A new user with ``role`` and one API key scoped to ``models``."""
    with services.db.session() as session:
        user, _ = create_user(session, unique("user"), [role])
        new = create_api_key(session, user, "test", models=models, expires_days=expires_days)
    return Caller(user.username, new.plaintext, new.key.prefix)


@pytest.fixture()
def make_caller(pg_services: Services) -> Callable[..., Caller]:
    return functools.partial(new_caller, pg_services)


@pytest.fixture()
def caller(make_caller: Callable[..., Caller]) -> Caller:
    return make_caller()


@pytest.fixture()
def client(api_server: LiveServer, caller: Caller) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=caller.key, max_retries=0)


@contextmanager
def gateway_workers(
    services: Services, count: int = 2, **overrides: object
) -> Iterator[list[LiveServer]]:
    """Independent gateway apps on the same database, as gunicorn workers or hosts are."""
    settings = make_settings(
        services.settings.home,
        database_url=services.settings.effective_database_url,
        **overrides,
    )
    apps = [create_app(services=build_services(settings)) for _ in range(count)]
    servers = [LiveServer(app) for app in apps]
    try:
        yield servers
    finally:
        for server, app in zip(servers, apps, strict=True):
            server.stop()
            app.extensions["appliance"].services.db.dispose()


@contextmanager
def gateway_with_policies(
    services: Services,
    folder: Path,
    *,
    extra_roles: str = "",
    privacy: str | None = None,
    content: str | None = None,
) -> Iterator[LiveServer]:
    """One gateway on the shipped policies plus ``extra_roles`` (and another privacy or
    content policy)."""
    for path in SHIPPED_POLICIES.iterdir():
        if path.is_file():
            (folder / path.name).write_text(path.read_text())
    if content is not None:
        (folder / "content.yaml").write_text(content)
    (folder / "rbac.yaml").write_text((SHIPPED_POLICIES / "rbac.yaml").read_text() + extra_roles)
    if privacy is not None:
        (folder / "desensitization.yaml").write_text(privacy)
    settings = make_settings(
        services.settings.home,
        database_url=services.settings.effective_database_url,
        policies_dir=str(folder),
    )
    with services.db.session() as session:
        sync_roles(session, build_services(settings).rbac)
    with gateway_workers(services, 1, policies_dir=str(folder)) as (server,):
        yield server
