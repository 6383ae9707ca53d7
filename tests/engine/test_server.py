"""The engine's HTTP app, driven by the official OpenAI SDK over a real socket."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from flask import Flask
from werkzeug.serving import make_server

from appliance.engine.server import EXTENSION, create_app
from appliance.vault.engine_key import EngineKeys
from tests import timing

pytestmark = pytest.mark.engine

MODEL = "tiny"
MESSAGES = [{"role": "user", "content": "你好! Say something."}]


@pytest.fixture(scope="module")
def tiny_dir(tiny_model: Path) -> Path:
    return tiny_model


@pytest.fixture(scope="module")
def app(tiny_dir: Path) -> Flask:
    return create_app(tiny_dir, MODEL)


@pytest.fixture(scope="module")
def base_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=timing.scaled(10))


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_health(base_url: str) -> None:
    response = httpx.get(f"{base_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_models_list(client: openai.OpenAI, tiny_dir: Path) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].owned_by == "appliance"
    # vLLM's card of a base model: its context length, what it was loaded from, no parent
    config = json.loads((tiny_dir / "config.json").read_text(encoding="utf-8"))
    extra = models.data[0].model_extra or {}
    assert extra["max_model_len"] == config["max_position_embeddings"]
    assert extra["root"] == str(tiny_dir) and extra["parent"] is None


def test_chat_non_streaming(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=12, seed=4, temperature=0.8
    )
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens <= 12


def test_chat_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16, "seed": 21}
    whole = client.chat.completions.create(**kwargs)
    chunks = list(
        client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finals[-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == []
    assert chunks[-1].usage == whole.usage


def test_completions_both_ways(client: openai.OpenAI) -> None:
    kwargs = {"model": MODEL, "prompt": "The appliance 保护", "max_tokens": 10, "seed": 2}
    whole = client.completions.create(**kwargs)
    assert whole.object == "text_completion"
    assert whole.usage is not None and whole.usage.completion_tokens <= 10
    chunks = list(
        client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert chunks[-1].usage == whole.usage


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert "The model 'gpt-x' does not exist." in str(info.value)


def test_n_below_one_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, n=0)
    assert "'n'" in str(info.value)


def test_validation_error_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=3)
    assert info.value.body["param"] == "temperature"  # type: ignore[index]


def test_context_length_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt="hi", max_tokens=10_000)
    assert "maximum context length" in str(info.value)


def test_tokenize_counts_what_generation_counts(base_url: str, client: openai.OpenAI) -> None:
    counted = httpx.post(f"{base_url}/tokenize", json={"model": MODEL, "messages": MESSAGES})
    assert counted.status_code == 200
    answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)  # type: ignore[arg-type]
    assert counted.json()["count"] == answer.usage.prompt_tokens  # type: ignore[union-attr]
    assert counted.json()["max_model_len"] == 512
    plain = httpx.post(f"{base_url}/tokenize", json={"model": MODEL, "prompt": "hello hello"})
    assert plain.json()["count"] == len(plain.json()["tokens"]) > 0


def test_tokenize_wants_one_input(base_url: str) -> None:
    both = {"model": MODEL, "prompt": "x", "messages": MESSAGES}
    response = httpx.post(f"{base_url}/tokenize", json=both)
    assert response.status_code == 400
    assert "either messages or prompt" in response.json()["error"]["message"]


def test_malformed_json_is_400(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/v1/chat/completions",
        content=b'{"model": "tiny", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/v1/nope", 404), ("GET", "/v1/completions", 405)]
)
def test_routing_errors_are_json(base_url: str, method: str, path: str, status: int) -> None:
    response = httpx.request(method, f"{base_url}{path}")
    assert response.status_code == status
    assert response.json()["error"]["message"]


class _BrokenEngine:
    def chat_prompt(self, messages: object) -> str:
        raise RuntimeError("secret detail that must not leak")


def test_unexpected_error_is_generic_500(app: Flask) -> None:
    served = app.extensions[EXTENSION]
    real, served.engine = served.engine, _BrokenEngine()
    try:
        response = app.test_client().post(
            "/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES}
        )
    finally:
        served.engine = real
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"]["type"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)


def test_raw_sse_framing(base_url: str) -> None:
    body = {"model": MODEL, "prompt": "hi", "max_tokens": 3, "stream": True}
    response = httpx.post(f"{base_url}/v1/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert json.loads(events[0][len("data: ") :])["object"] == "text_completion"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_under_gunicorn_stops_on_sigterm(tiny_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    key_file = tmp_path / "keys" / "engine.key"
    key = EngineKeys(key_file).current()  # serve() always requires a key
    code = (
        "from appliance.engine.server import serve; "
        "from appliance.vault.engine_key import EngineKeys; "
        f"serve({str(tiny_dir)!r}, '127.0.0.1', {port}, keys=EngineKeys({str(key_file)!r}))"
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)
    try:
        deadline = timing.deadline(40)
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/v1/models",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=timing.scaled(2),
                )
                assert response.json()["data"][0]["id"] == tiny_dir.name
                break
            except httpx.HTTPError:
                alive = proc.poll() is None and time.monotonic() < deadline
                assert alive, log_path.read_text()
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=timing.scaled(30)) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
