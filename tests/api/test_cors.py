"""CORS for browser apps on the intranet: exact allowed origins, off by default.

A browser sends a preflight (OPTIONS, no credential) before a cross-origin call with an
Authorization header; an allowed origin's is answered without a key, and every answer to
that origin says it may read it, and the X-Request-Id and x-ratelimit-* headers.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from appliance.config import load_settings
from appliance.errors import ConfigError
from appliance.limits.budget import HEADER_NAMES
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.conftest import Caller, gateway_workers
from tests.api.vllm_standin import BASE, VllmStandIn
from tests.conftest import LiveServer, unique

APP = "https://chat.intranet.example"
OTHER = "https://elsewhere.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
}


@pytest.fixture(scope="module")
def cors_gateway(pg_services: Services) -> Iterator[LiveServer]:
    origins = f"{APP}, http://10.1.2.3:8080"
    with gateway_workers(pg_services, 1, cors_allowed_origins=origins) as (server,):
        yield server


@pytest.fixture(scope="module")
def model(pg_services: Services) -> Iterator[str]:
    standin = VllmStandIn()
    name = unique("browser")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[standin.url], served_name=BASE)
    yield name
    standin.stop()


def preflight(
    server: LiveServer, origin: str, path: str = "/v1/chat/completions"
) -> httpx.Response:
    return httpx.options(
        f"{server.url}{path}", headers={"Origin": origin, **PREFLIGHT}, timeout=timing.scaled(10)
    )


def listed(header: str | None) -> set[str]:
    return {part.strip().lower() for part in (header or "").split(",") if part.strip()}


def test_an_allowed_origins_preflight_is_answered_without_a_key(cors_gateway: LiveServer) -> None:
    answer = preflight(cors_gateway, APP)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert {"authorization", "content-type", "x-stainless-os"} <= listed(
        answer.headers.get("Access-Control-Allow-Headers")
    )
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "x-ratelimit-limit-requests" not in answer.headers  # no caller: no budget
    ip_origin = preflight(cors_gateway, "http://10.1.2.3:8080", "/v1/models")
    assert ip_origin.status_code == 200
    assert ip_origin.headers["Access-Control-Allow-Origin"] == "http://10.1.2.3:8080"


def test_another_origin_gets_no_cors_and_its_preflight_needs_a_key(
    cors_gateway: LiveServer,
) -> None:
    for origin in (OTHER, APP + ".evil.example", "http://chat.intranet.example", "null"):
        answer = preflight(cors_gateway, origin)
        assert answer.status_code == 401, origin
        assert "Access-Control-Allow-Origin" not in answer.headers, origin


def test_an_allowed_origin_may_read_answers_errors_and_their_headers(
    cors_gateway: LiveServer, caller: Caller, model: str
) -> None:
    answer = httpx.post(
        f"{cors_gateway.url}/v1/chat/completions",
        headers={"Origin": APP, "Authorization": f"Bearer {caller.key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=timing.scaled(10),
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert "origin" in listed(answer.headers.get("Vary"))
    exposed = listed(answer.headers.get("Access-Control-Expose-Headers"))
    assert {"x-request-id", *HEADER_NAMES} <= exposed
    assert answer.headers["x-ratelimit-limit-requests"] == "60"  # developer: 60 a minute
    refused = httpx.get(f"{cors_gateway.url}/v1/models", headers={"Origin": APP}, timeout=10)
    assert refused.status_code == 401  # no key: refused, but the page may read why
    assert refused.headers["Access-Control-Allow-Origin"] == APP
    plain = httpx.get(
        f"{cors_gateway.url}/v1/models", headers={"Authorization": f"Bearer {caller.key}"}
    )
    assert "Access-Control-Allow-Origin" not in plain.headers  # not a browser's call


def test_cors_is_off_by_default(api_server: LiveServer, caller: Caller) -> None:
    answer = preflight(api_server, APP)
    assert answer.status_code == 401
    assert "Access-Control-Allow-Origin" not in answer.headers
    called = httpx.get(
        f"{api_server.url}/v1/models",
        headers={"Origin": APP, "Authorization": f"Bearer {caller.key}"},
        timeout=timing.scaled(10),
    )
    assert called.status_code == 200
    assert "Access-Control-Allow-Origin" not in called.headers


@pytest.mark.parametrize(
    "bad", ["*", "https://*.intranet.example", "https://app.example/", "null", "app.example"]
)
def test_only_exact_origins_can_be_allowed(tmp_path, bad: str) -> None:
    with pytest.raises(ConfigError, match="cors_allowed_origins"):
        load_settings(home=str(tmp_path), cors_allowed_origins=bad)


def test_allowed_origins_are_read_as_a_list_or_comma_separated(tmp_path, monkeypatch) -> None:
    settings = load_settings(
        home=str(tmp_path), cors_allowed_origins="https://A.example, http://b:81"
    )
    assert settings.cors_allowed_origins == ("https://a.example", "http://b:81")
    monkeypatch.setenv("APPLIANCE_CORS_ALLOWED_ORIGINS", '["https://c.example"]')
    assert load_settings(home=str(tmp_path)).cors_allowed_origins == ("https://c.example",)
