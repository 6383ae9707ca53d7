"""A stand-in for a vLLM server behind the gateway: canned answers, every request recorded.

It is no vLLM and says so: every answer carries ``X-Stand-In: vllm-standin``, and each JSON
answer of the endpoints only vLLM has (and the built-in engine does not) carries
``"stand_in": "vllm-standin"`` (an unknown field, which the gateway passes on).

Its ``/v1/models`` is what vLLM lists for a base model served with a LoRA adapter: the
base with its ``max_model_len``, ``root`` (what it was loaded from) and ``parent`` null,
the adapter with its ``root`` (the adapter's path) and ``parent`` (the base's served name).

The other endpoints answer in vLLM's shapes (0.8.5's, and the Responses API of later
versions), echoing what they were sent where vLLM's answer holds text: the Responses
API repeats its input (and adds a phone number of "its own", ``MODEL_PHONE``), a rerank
returns its documents, a transcription says ``TRANSCRIPT``. What each request carried
(headers, JSON body, form fields, files) is in ``received``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from tests.conftest import LiveServer
from tests.upstream.test_pool import chat_chunks, chat_completion

BASE = "org/base-model"
BASE_ROOT = "/models/org/base-model"
ADAPTER = "sql-lora"
ADAPTER_ROOT = "/adapters/sql-lora"
MAX_MODEL_LEN = 8192
STAND_IN = "vllm-standin"
MODEL_PHONE = "13912345678"  # what "the model" writes of its own: output-scanned
TRANSCRIPT = f"The caller said: call me at {MODEL_PHONE}."
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
RESPONSE_USAGE = {"input_tokens": 9, "output_tokens": 6, "total_tokens": 15}
RERANK_TOKENS = 11
POOLING_TOKENS = 4


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


@dataclass
class Received:
    """One request as the stand-in got it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


class VllmStandIn:
    """``requests`` holds (method, path, headers) of every request it was sent, and
    ``received`` each request whole."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.received: list[Received] = []
        app = Flask("vllm-standin")
        app.before_request(self._record)
        app.after_request(self._say_so)
        app.add_url_rule("/health", "health", lambda: {"status": "ok"})
        app.add_url_rule("/v1/models", "models", model_cards)
        app.add_url_rule("/v1/chat/completions", "chat", self._chat, methods=["POST"])
        app.add_url_rule("/v1/completions", "completions", self._completion, methods=["POST"])
        app.add_url_rule("/v1/embeddings", "embeddings", self._pooled, methods=["POST"])
        app.add_url_rule("/v1/responses", "responses", self._responses, methods=["POST"])
        app.add_url_rule("/tokenize", "tokenize", self._tokenize, methods=["POST"])
        app.add_url_rule("/detokenize", "detokenize", self._detokenize, methods=["POST"])
        for path in ("/score", "/v1/score"):
            app.add_url_rule(path, path, self._score, methods=["POST"])
        for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
            app.add_url_rule(path, path, self._rerank, methods=["POST"])
        app.add_url_rule("/pooling", "pooling", self._pooled, methods=["POST"])
        app.add_url_rule("/classify", "classify", self._classify, methods=["POST"])
        for path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            app.add_url_rule(path, path, self._audio, methods=["POST"])
        self.server = LiveServer(app)
        self.url = self.server.url

    # ------------------------------------------------------------------ recording

    def _record(self) -> None:
        got = Received(request.method, request.path, dict(request.headers))
        if request.mimetype == "multipart/form-data":
            got.form = {name: request.form.getlist(name) for name in request.form}
            got.files = {name: f.read() for name, f in request.files.items()}
        elif request.method == "POST":
            got.json = request.get_json(silent=True)
        with self.lock:
            self.requests.append((request.method, request.path, got.headers))
            self.received.append(got)

    @staticmethod
    def _say_so(response: Response) -> Response:
        response.headers["X-Stand-In"] = STAND_IN
        return response

    def sent(self, path: str) -> list[dict[str, str]]:
        """The headers of the requests it got for ``path``."""
        with self.lock:
            return [headers for _, p, headers in self.requests if p == path]

    def last(self, path: str) -> Received:
        """The last request it got for ``path``."""
        with self.lock:
            return [r for r in self.received if r.path == path][-1]

    def stop(self) -> None:
        self.server.stop()

    # ------------------------------------------------------------------ answers

    def _chat(self) -> Any:
        body = request.get_json()
        if body.get("stream"):
            return Response(
                b"".join(chat_chunks(body["model"], "hi")), mimetype="text/event-stream"
            )
        return chat_completion(body["model"], "hi")

    def _completion(self) -> Any:
        body = request.get_json()
        choice = {"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}
        return {
            "id": "cmpl-standin",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": USAGE,
        }

    def _pooled(self) -> Any:
        """/v1/embeddings and /pooling: one vector per input (or per chat)."""
        body = request.get_json()
        raw = body.get("input")
        count = len(raw) if isinstance(raw, list) and raw and isinstance(raw[0], str) else 1
        embeddings = request.path.endswith("embeddings")
        kind, key = ("embedding", "embedding") if embeddings else ("pooling", "data")
        data = [{"index": i, "object": kind, key: [0.6, 0.8]} for i in range(count)]
        return {
            "id": "pool-standin",
            "object": "list",
            "created": 0,
            "model": body["model"],
            "data": data,
            "usage": {"prompt_tokens": POOLING_TOKENS, "total_tokens": POOLING_TOKENS},
            "stand_in": STAND_IN,
        }

    def _tokenize(self) -> Any:
        return {
            "count": 3,
            "max_model_len": MAX_MODEL_LEN,
            "tokens": [1, 2, 3],
            "stand_in": STAND_IN,
        }

    def _detokenize(self) -> Any:
        return {"prompt": "one two three", "stand_in": STAND_IN}

    def _score(self) -> Any:
        body = request.get_json()
        pairs = body["text_2"] if isinstance(body.get("text_2"), list) else [body.get("text_2")]
        data = [{"index": i, "object": "score", "score": 0.5} for i in range(len(pairs))]
        return {
            "id": "score-standin",
            "object": "list",
            "created": 0,
            "model": body["model"],
            "data": data,
            "usage": {"prompt_tokens": 7, "total_tokens": 7, "completion_tokens": 0},
            "stand_in": STAND_IN,
        }

    def _rerank(self) -> Any:
        body = request.get_json()
        documents = body.get("documents") or []
        results = [
            {"index": i, "document": {"text": doc}, "relevance_score": 1.0 - i / 10}
            for i, doc in enumerate(documents)
        ]
        return {
            "id": "rerank-standin",
            "model": body["model"],
            "usage": {"total_tokens": RERANK_TOKENS},
            "results": results,
            "stand_in": STAND_IN,
        }

    def _classify(self) -> Any:
        body = request.get_json()
        raw = body.get("input")
        count = len(raw) if isinstance(raw, list) else 1
        data = [
            {"index": i, "label": "positive", "probs": [0.1, 0.9], "num_classes": 2}
            for i in range(count)
        ]
        return {
            "id": "classify-standin",
            "object": "list",
            "created": 0,
            "model": body["model"],
            "data": data,
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
            "stand_in": STAND_IN,
        }

    def _audio(self) -> Any:
        fmt = request.form.get("response_format", "json")
        if request.form.get("stream") == "true":
            return Response(_transcript_chunks(request.form["model"]), mimetype="text/event-stream")
        if fmt in ("text", "srt", "vtt"):
            return Response(TRANSCRIPT, mimetype="text/plain")
        return {
            "text": TRANSCRIPT,
            "usage": {"type": "duration", "seconds": 3},
            "stand_in": STAND_IN,
        }

    def _responses(self) -> Any:
        body = request.get_json()
        said = f"You said: {input_text(body)} Call me at {MODEL_PHONE}."
        if body.get("stream"):
            return Response(_response_events(body["model"], said), mimetype="text/event-stream")
        return {**response_object(body["model"], said, "completed"), "stand_in": STAND_IN}


def input_text(body: dict[str, Any]) -> str:
    """The text of a Responses API request's last input item."""
    value = body.get("input")
    if isinstance(value, str):
        return value
    content = value[-1].get("content") if isinstance(value, list) and value else None
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def response_object(model: str, text: str | None, status: str) -> dict[str, Any]:
    message = {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": []
        if text is None
        else [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": "resp_standin",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": status,
        "output": [] if text is None else [message],
        "usage": RESPONSE_USAGE if status == "completed" else None,
    }


def _response_events(model: str, text: str) -> Iterator[bytes]:
    """vLLM's event stream of one message, its text three characters an event (so a
    placeholder is split between events)."""
    sequence = iter(range(1000))

    def event(kind: str, **data: Any) -> bytes:
        body = {"type": kind, "sequence_number": next(sequence), **data}
        return f"event: {kind}\ndata: {json.dumps(body)}\n\n".encode()

    at = {"item_id": "msg_standin", "output_index": 0, "content_index": 0}
    yield event("response.created", response=response_object(model, None, "in_progress"))
    item = response_object(model, "", "in_progress")["output"][0]
    item["content"] = []
    yield event("response.output_item.added", output_index=0, item=item)
    part = {"type": "output_text", "text": "", "annotations": []}
    yield event("response.content_part.added", part=part, **at)
    for i in range(0, len(text), 3):
        yield event("response.output_text.delta", delta=text[i : i + 3], **at)
    yield event("response.output_text.done", text=text, **at)
    yield event("response.content_part.done", part={**part, "text": text}, **at)
    done = response_object(model, text, "completed")
    yield event("response.output_item.done", output_index=0, item=done["output"][0])
    yield event("response.completed", response=done)


def _transcript_chunks(model: str) -> Iterator[bytes]:
    def chunk(**data: Any) -> bytes:
        body = {"id": "trsc-standin", "object": "transcription.chunk", "created": 0, "model": model}
        return f"data: {json.dumps({**body, **data})}\n\n".encode()

    for i in range(0, len(TRANSCRIPT), 4):
        yield chunk(choices=[{"delta": {"content": TRANSCRIPT[i : i + 4]}}])
    yield chunk(choices=[{"delta": {}, "finish_reason": "stop"}])
    yield chunk(choices=[], usage=USAGE)
    yield b"data: [DONE]\n\n"
