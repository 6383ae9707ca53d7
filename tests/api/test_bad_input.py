"""Hostile input to the API: a precise 4xx with an OpenAI-style JSON error, never a 500 or a
traceback, and nothing sent upstream.

Deeply nested JSON, lone surrogates, chunked bodies over the size limit (the dev server and
the production gunicorn), and requests gunicorn itself refuses (oversized headers, a bare CR).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from appliance.services import Services
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.conftest import Caller
from tests.api.test_gunicorn import Gunicorn, gunicorn_api  # noqa: F401 (a fixture)
from tests.conftest import LiveServer, unique

MESSAGES = [{"role": "user", "content": "hi"}]


# --- an upstream that counts what reaches it ------------------------------------------


class RecordingUpstream:
    """An OpenAI-compatible stand-in that records every request it is sent."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorded = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                recorded.append(self.path)
                answer: dict[str, Any]
                if self.path.endswith("/tokenize"):
                    answer = {"count": 3}
                elif self.path.endswith("/embeddings"):
                    answer = {
                        "object": "list",
                        "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}],
                        "model": "x",
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    }
                else:
                    answer = {
                        "id": "chatcmpl-x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "x",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "ok"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    recorder = RecordingUpstream()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="module")
def model(pg_services: Services, upstream: RecordingUpstream) -> str:
    name = unique("recorded")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[upstream.url])
    return name


def post(
    server: LiveServer | Gunicorn, key: str, content: bytes, path: str = "/v1/chat/completions"
) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}",
        content=content,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        timeout=timing.scaled(30),
    )


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    return error


def chat_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


# --- deeply nested JSON ---------------------------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize(
    "content",
    [
        b"[" * DEEP,  # unterminated: the parser recurses before it finds the end
        b"[" * DEEP + b"]" * DEEP,
        b'{"model": "m", "messages": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    ],
    ids=["open", "closed", "in-a-field"],
)
def test_deeply_nested_json_is_400(api_server: LiveServer, caller: Caller, content: bytes) -> None:
    error = assert_openai_error(post(api_server, caller.key, content), 400)
    assert error["type"] == "invalid_request_error"
    assert "nested deeper than" in error["message"]


def test_nesting_the_parser_takes_is_still_refused_before_upstream(
    api_server: LiveServer, caller: Caller, model: str, upstream: RecordingUpstream
) -> None:
    """A few hundred levels parse, but are refused before any upstream sees them."""
    before = len(upstream.paths)
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    body = chat_body(model, metadata={"deep": deep})
    error = assert_openai_error(post(api_server, caller.key, json.dumps(body).encode()), 400)
    assert "nested deeper than" in error["message"]
    assert len(upstream.paths) == before


def test_ordinary_nesting_is_forwarded(
    api_server: LiveServer, caller: Caller, model: str, upstream: RecordingUpstream
) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(20):  # a deep but reasonable JSON schema
        schema = {"type": "object", "properties": {"child": schema}}
    body = chat_body(
        model,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    response = post(api_server, caller.key, json.dumps(body).encode())
    assert response.status_code == 200, response.text
    assert upstream.paths[-1] == "/v1/chat/completions"


# --- lone surrogates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/chat/completions",
            '{"model": "MODEL", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
            "messages.0.content",
        ),
        (
            "/v1/chat/completions",
            '{"model": "MODEL", "messages": [{"role": "user", "content": '
            '[{"type": "text", "text": "\\udfff"}]}]}',
            "messages.0.content.0.text",
        ),
        (
            "/v1/chat/completions",
            '{"model": "MODEL", "messages": [{"role": "user", "content": "x", '
            '"name": "\\udc00\\ud800"}]}',
            "messages.0.name",
        ),
        ("/v1/completions", '{"model": "MODEL", "prompt": ["ok", "\\uDBFF"]}', "prompt.1"),
        ("/v1/embeddings", '{"model": "MODEL", "input": "\\ud83d"}', "input"),
    ],
    ids=["content", "content-part", "reversed-pair", "prompt", "embedding-input"],
)
def test_lone_surrogate_is_400_naming_the_field(
    api_server: LiveServer,
    caller: Caller,
    model: str,
    upstream: RecordingUpstream,
    path: str,
    body: str,
    field: str,
) -> None:
    before = len(upstream.paths)
    content = body.replace("MODEL", model).encode()
    error = assert_openai_error(post(api_server, caller.key, content, path=path), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == field
    assert f"'{field}'" in error["message"] and "surrogate" in error["message"]
    assert len(upstream.paths) == before, "the request reached the upstream"


def test_lone_surrogate_in_a_utf16_body_is_400(
    api_server: LiveServer, caller: Caller, model: str, upstream: RecordingUpstream
) -> None:
    """JSON may come in UTF-16 (json.loads detects it): the escape is looked for there too."""
    before = len(upstream.paths)
    text = '{"model": "MODEL", "messages": [{"role": "user", "content": "\\ud800"}]}'
    content = text.replace("MODEL", model).encode("utf-16")
    error = assert_openai_error(post(api_server, caller.key, content), 400)
    assert error["param"] == "messages.0.content"
    assert len(upstream.paths) == before


def test_surrogate_in_utf8_bytes_is_400(
    api_server: LiveServer, caller: Caller, model: str, upstream: RecordingUpstream
) -> None:
    """The surrogate encoded as bytes (ED A0 80), not as an escape: not UTF-8 at all."""
    before = len(upstream.paths)
    content = b'{"model": "%s", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}' % (
        model.encode()
    )
    assert_openai_error(post(api_server, caller.key, content), 400)
    assert len(upstream.paths) == before


def test_escaped_surrogate_pairs_are_fine(
    api_server: LiveServer, caller: Caller, model: str, upstream: RecordingUpstream
) -> None:
    """A pair (an emoji, as ensure_ascii encoders write it) is valid Unicode: forwarded."""
    text = '{"model": "MODEL", "messages": [{"role": "user", "content": "smile \\ud83d\\ude00"}]}'
    content = text.replace("MODEL", model).encode()
    response = post(api_server, caller.key, content)
    assert response.status_code == 200, response.text
    assert upstream.paths[-1] == "/v1/chat/completions"


# --- chunked bodies -------------------------------------------------------------------


def post_chunked(url: str, key: str, chunks: Iterator[bytes]) -> tuple[int, str, bytes]:
    """POST with Transfer-Encoding: chunked (no Content-Length); the status, type and body."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timing.scaled(30))
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=chunks,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def oversized_chunks(model: str, limit: int) -> Iterator[bytes]:
    """A small valid request padded with whitespace to a little over ``limit`` bytes, in
    64 KiB chunks: cut at the limit it would still parse (and be answered)."""
    head = json.dumps(chat_body(model)).encode()
    padding = limit + 1024 - len(head)
    yield head
    while padding > 0:
        size = min(65536, padding)
        yield b" " * size
        padding -= size


def small_chunks(model: str) -> Iterator[bytes]:
    body = json.dumps(chat_body(model)).encode()
    for start in range(0, len(body), 7):
        yield body[start : start + 7]


def check_chunked_limit(
    url: str, caller: Caller, model: str, upstream: RecordingUpstream, limit: int
) -> None:
    before = len(upstream.paths)
    status, kind, body = post_chunked(url, caller.key, oversized_chunks(model, limit))
    assert status == 413, body[:300]
    assert kind.startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large" and str(limit) in error["message"]
    assert len(upstream.paths) == before, "a truncated body was forwarded"
    # A chunked body within the limit is read whole and answered.
    status, _, body = post_chunked(url, caller.key, small_chunks(model))
    assert status == 200, body[:300]
    assert upstream.paths[-1] == "/v1/chat/completions"


def test_chunked_body_over_the_limit_is_413_on_the_dev_server(
    api_server: LiveServer,
    caller: Caller,
    model: str,
    upstream: RecordingUpstream,
    pg_services: Services,
) -> None:
    limit = pg_services.settings.max_body_bytes
    check_chunked_limit(api_server.url, caller, model, upstream, limit)


# --- under gunicorn ------------------------------------------------------------------


@pytest.mark.slow
def test_chunked_body_over_the_limit_is_413_under_gunicorn(
    gunicorn_api: Gunicorn,  # noqa: F811 (the fixture imported above)
    caller: Caller,
    model: str,
    upstream: RecordingUpstream,
    pg_services: Services,
) -> None:
    limit = pg_services.settings.max_body_bytes
    check_chunked_limit(gunicorn_api.url, caller, model, upstream, limit)
    assert "Traceback" not in gunicorn_api.output()


def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timing.scaled(10)) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.slow
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"X-Big: " + b"a" * 9000 + b"\r\n", 431),  # over limit_request_field_size
        (b"".join(b"X-H%d: v\r\n" % i for i in range(120)), 431),  # over limit_request_fields
        (b"X-Bad: a\rb\r\n", 400),  # a bare CR inside a header value
    ],
    ids=["long-header", "too-many-headers", "bare-cr"],
)
def test_gunicorn_refusals_are_openai_json(
    gunicorn_api: Gunicorn,  # noqa: F811 (the fixture imported above)
    headers: bytes,
    status: int,
) -> None:
    answer = raw_exchange(
        gunicorn_api.url, b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\n" + headers + b"\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), answer[:300]
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert fields["content-type"].startswith("application/json")
    assert int(fields["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    assert "<html" not in body.decode()
    assert "Traceback" not in gunicorn_api.output()
