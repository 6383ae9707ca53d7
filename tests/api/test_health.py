"""Liveness and readiness of the API app (on the embedded default's SQLite database)."""

from __future__ import annotations

import httpx

from appliance.api.app import create_app
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests.conftest import LiveServer, free_port


def test_readiness_follows_the_database_and_the_upstreams(
    sqlite_services: Services, engine_server: LiveServer
) -> None:
    server = LiveServer(create_app(services=sqlite_services))
    try:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        empty = httpx.get(f"{server.url}/readyz")
        assert empty.status_code == 200 and empty.json()["checks"]["database"] == "ok"

        with sqlite_services.db.session() as session:
            add_model(session, "live", upstream_urls=[engine_server.url])
        assert httpx.get(f"{server.url}/readyz").status_code == 200

        with sqlite_services.db.session() as session:
            add_model(session, "dead", upstream_urls=[f"http://127.0.0.1:{free_port()}"])
        not_ready = httpx.get(f"{server.url}/readyz")
        assert not_ready.status_code == 503
        body = not_ready.json()
        assert body["status"] == "not ready"
        assert body["checks"]["upstreams"]["live"] == "ok"
        assert body["checks"]["upstreams"]["dead"].startswith("unreachable")
        assert "x-request-id" in not_ready.headers
    finally:
        server.stop()
