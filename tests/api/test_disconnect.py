"""A client that goes away mid-stream: the call is audited and the upstream is cancelled.

The upstream here is a stand-in that streams a chunk every 20 ms for up to 10 s and
records when its stream is closed; the tiny model could finish before the gateway
notices the disconnect, which would make the test depend on luck.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
from flask import Flask, Response

from appliance.services import Services
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.conftest import Caller
from tests.api.test_gateway import audit_events_of
from tests.conftest import LiveServer, unique


def slow_upstream(closed: threading.Event) -> Flask:
    app = Flask("slow-upstream")

    @app.post("/v1/chat/completions")
    def chat() -> Response:
        def events() -> Iterator[bytes]:
            try:
                for i in range(500):
                    chunk = {
                        "id": "c",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": "slow",
                        "choices": [
                            {"index": 0, "delta": {"content": f"{i} "}, "finish_reason": None}
                        ],
                    }
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                    time.sleep(0.02)
            finally:
                closed.set()

        return Response(events(), mimetype="text/event-stream")

    return app


def test_client_disconnect_is_audited_and_cancels_the_upstream(
    api_server, caller: Caller, pg_services: Services
) -> None:
    closed = threading.Event()
    upstream = LiveServer(slow_upstream(closed))
    name = unique("slow")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[upstream.url])
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        with httpx.stream(
            "POST",
            f"{api_server.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {caller.key}"},
            timeout=timing.scaled(30),
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
        started = time.monotonic()
        assert closed.wait(timeout=timing.scaled(5)), "the upstream stream was not cancelled"
        assert time.monotonic() - started < timing.scaled(5)
        (event,) = audit_events_of(pg_services, caller.username)
        assert (event.action, event.outcome, event.model) == (
            "api.chat.completion",
            "unknown",
            name,
        )
    finally:
        upstream.stop()
