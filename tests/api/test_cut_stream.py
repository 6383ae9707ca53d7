"""A stream the engine never finishes (killed mid-answer): what was sent is still charged.

The upstream here is a stand-in that streams N content chunks with no usage block and
then breaks the connection off, as an engine killed mid-generation does. Without usage
from the upstream the gateway counts the chunks that carried text (one token each, as
vLLM streams them) and says so in the event (``usage_source: counted``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from flask import Flask, Response, request

from appliance.auth.principal import Principal
from appliance.limits import EffectiveLimits
from appliance.models import AuditEvent
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests.api.conftest import Caller
from tests.conftest import LiveServer, unique, wait_for_events

SENT = 93


def cut_upstream(sent: int, *, cut: bool) -> Flask:
    app = Flask("cut-upstream")
    app.add_url_rule("/health", "health", lambda: {"status": "ok"})

    @app.post("/v1/chat/completions")
    def chat() -> Response:
        connection: socket.socket = request.environ["werkzeug.socket"]

        def events() -> Iterator[bytes]:
            role = {"role": "assistant", "content": ""}
            yield _event({"index": 0, "delta": role, "finish_reason": None})
            for _ in range(sent):
                delta = {"content": "word "}
                yield _event({"index": 0, "delta": delta, "finish_reason": None})
                time.sleep(0.002)  # an engine's pace: each chunk arrives on its own
            if cut:  # the engine dies: the connection drops mid-response
                connection.shutdown(socket.SHUT_RDWR)
                return
            yield _event({"index": 0, "delta": {}, "finish_reason": "stop"})
            yield b"data: [DONE]\n\n"

        return Response(events(), mimetype="text/event-stream")

    return app


def _event(choice: dict[str, Any]) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "cut"}
    return f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n".encode()


@pytest.mark.parametrize("cut", [True, False], ids=["cut", "ended-without-usage"])
def test_a_stream_without_usage_is_charged_and_audited_with_what_was_sent(
    api_server: LiveServer,
    caller: Caller,
    pg_services: Services,
    monkeypatch: pytest.MonkeyPatch,
    cut: bool,
) -> None:
    limiter = api_server.app.extensions["appliance"].limiter  # type: ignore[attr-defined]
    charged: list[int] = []
    lock = threading.Lock()
    charge = limiter.charge_tokens

    def recording(principal: Principal, limits: EffectiveLimits, tokens: int) -> None:
        if principal.key_prefix == caller.prefix:
            with lock:
                charged.append(tokens)
        charge(principal, limits, tokens)

    monkeypatch.setattr(limiter, "charge_tokens", recording)
    upstream = LiveServer(cut_upstream(SENT, cut=cut))
    name = unique("cut")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[upstream.url])
    client = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=caller.key, max_retries=0)
    received = []
    try:
        stream = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        try:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
        except openai.APIError:
            assert cut  # the gateway reports the broken stream in-band
        assert len(received) == SENT
        (event,) = wait_for_events(pg_services, AuditEvent.actor == caller.username)
        assert event.model == name
        assert event.outcome == ("failure" if cut else "success")
        assert event.completion_tokens == SENT
        assert event.details["usage_source"] == "counted"
        assert charged == [SENT]
    finally:
        upstream.stop()
