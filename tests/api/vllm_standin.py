"""A stand-in for a vLLM server behind the gateway: canned answers, every request recorded.

Its ``/v1/models`` is what vLLM lists for a base model served with a LoRA adapter: the
base with its ``max_model_len``, ``root`` (what it was loaded from) and ``parent`` null,
the adapter with its ``root`` (the adapter's path) and ``parent`` (the base's served name).
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, Response, request

from tests.conftest import LiveServer
from tests.upstream.test_pool import chat_chunks, chat_completion

BASE = "org/base-model"
BASE_ROOT = "/models/org/base-model"
ADAPTER = "sql-lora"
ADAPTER_ROOT = "/adapters/sql-lora"
MAX_MODEL_LEN = 8192


def model_cards() -> dict[str, Any]:
    def card(model_id: str, root: str, parent: str | None, max_len: int | None) -> dict[str, Any]:
        return {
            "id": model_id,
            "object": "model",
            "created": 1_700_000_000,
            "owned_by": "vllm",
            "root": root,
            "parent": parent,
            "max_model_len": max_len,
            "permission": [{"id": "modelperm-x", "object": "model_permission"}],
        }

    return {
        "object": "list",
        "data": [
            card(BASE, BASE_ROOT, None, MAX_MODEL_LEN),
            card(ADAPTER, ADAPTER_ROOT, BASE, None),
        ],
    }


class VllmStandIn:
    """``requests`` holds (method, path, headers) of every request it was sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        app = Flask("vllm-standin")
        app.before_request(self._record)
        app.add_url_rule("/health", "health", lambda: {"status": "ok"})
        app.add_url_rule("/v1/models", "models", model_cards)
        app.add_url_rule("/v1/chat/completions", "chat", self._chat, methods=["POST"])
        app.add_url_rule("/tokenize", "tokenize", lambda: {"count": 3}, methods=["POST"])
        self.server = LiveServer(app)
        self.url = self.server.url

    def _record(self) -> None:
        with self.lock:
            self.requests.append((request.method, request.path, dict(request.headers)))

    def _chat(self) -> Any:
        body = request.get_json()
        if body.get("stream"):
            return Response(
                b"".join(chat_chunks(body["model"], "hi")), mimetype="text/event-stream"
            )
        return chat_completion(body["model"], "hi")

    def sent(self, path: str) -> list[dict[str, str]]:
        """The headers of the requests it got for ``path``."""
        with self.lock:
            return [headers for _, p, headers in self.requests if p == path]

    def stop(self) -> None:
        self.server.stop()
