"""Revoking a key under load: within one second no worker accepts it or its JWTs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from appliance.auth.api_keys import revoke_api_key
from appliance.services import Services
from tests import timing
from tests.api.conftest import Caller, gateway_workers
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workers(pg_services: Services) -> Iterator[list[LiveServer]]:
    with gateway_workers(pg_services) as servers:
        yield servers


def jwt_for(server: LiveServer, caller: Caller) -> str:
    response = httpx.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(caller.prefix, caller.key),
    )
    response.raise_for_status()
    return response.json()["access_token"]


def test_revocation_takes_effect_on_every_worker_within_one_second(
    workers: list[LiveServer], make_caller, pg_services: Services
) -> None:
    caller = make_caller(role="app")
    bearers = [caller.key, jwt_for(workers[0], caller)]
    stop = threading.Event()
    late_successes: list[float] = []
    revoked_at: list[float] = []
    counts = {"ok": 0, "refused": 0}
    lock = threading.Lock()

    def hammer(server: LiveServer, bearer: str) -> None:
        with httpx.Client(
            headers={"Authorization": f"Bearer {bearer}"}, timeout=timing.scaled(10)
        ) as client:
            while not stop.is_set():
                started = time.monotonic()
                status = client.get(f"{server.url}/v1/models").status_code
                assert status in (200, 401), status
                with lock:
                    counts["ok" if status == 200 else "refused"] += 1
                    if status == 200 and revoked_at and started > revoked_at[0] + 1.0:
                        late_successes.append(started - revoked_at[0])

    threads = [
        threading.Thread(target=hammer, args=(server, bearer))
        for server in workers
        for bearer in bearers
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # under load, the key works everywhere
    with pg_services.db.session() as session:
        revoke_api_key(session, caller.prefix)
    revoked_at.append(time.monotonic())
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=timing.scaled(15))
    assert counts["ok"] > 0 and counts["refused"] > 0
    assert late_successes == [], (
        f"accepted {len(late_successes)} requests over 1 s after revocation"
    )
