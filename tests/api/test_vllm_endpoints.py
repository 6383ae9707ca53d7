"""vLLM's other endpoints through the gateway (issue 19): the Responses API, /tokenize and
/detokenize, /score, /rerank, /pooling, /classify and audio, each with the key, its own
permission, the limits, desensitization, the answer pipeline and its own audit action.

The upstream is a recording vLLM stand-in (``tests/api/vllm_standin.py``): the built-in
engine serves none of these. The gateway runs the shipped policies (the shipped
desensitization policy: e-mail addresses and phone numbers pseudonymized, restored in
answers, what the model writes of its own masked) plus three roles: one that may only
send audio, one that may only rerank, one that may do everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from appliance.models import AuditEvent
from appliance.services import Services
from appliance.vault.engine_key import EngineKeys
from tests import timing
from tests.api.conftest import Caller, gateway_with_policies, new_caller
from tests.api.test_limits_gateway import set_key_limits
from tests.api.vllm_standin import (
    BASE,
    MODEL_PHONE,
    POOLING_TOKENS,
    RERANK_TOKENS,
    RESPONSE_USAGE,
    STAND_IN,
    TRANSCRIPT,
    VllmStandIn,
)
from tests.conftest import LiveServer, unique, wait_for_events

EMAIL = "alice.wang@example.com"
PHONE = "13812345678"
SECRET = f"Write to {EMAIL} or 电话{PHONE}."
MASKED_MODEL_PHONE = "139****5678"
EXTRA_ROLES = """
  listener:
    description: may only send audio
    permissions: [api:audio:invoke]
    models: ["*"]
  reranker:
    description: may only rerank
    permissions: [api:rerank:invoke]
    models: ["*"]
  everything:
    description: every endpoint family
    permissions: ["api:*"]
    models: ["*"]
    limits:
      max_tokens: 512
  narrow:
    description: a small context
    permissions: [api:responses:invoke]
    models: ["*"]
    limits:
      max_context: 600
"""
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4  # any bytes: passed on as-is

# path -> a body that is valid there (the model is filled in)
BODIES: dict[str, dict[str, Any]] = {
    "/v1/responses": {"input": "hi"},
    "/tokenize": {"prompt": "hi"},
    "/detokenize": {"tokens": [1, 2, 3]},
    "/score": {"text_1": "a", "text_2": ["b", "c"]},
    "/v1/score": {"text_1": "a", "text_2": "b"},
    "/rerank": {"query": "q", "documents": ["a", "b"]},
    "/v1/rerank": {"query": "q", "documents": ["a"]},
    "/v2/rerank": {"query": "q", "documents": ["a", "b"], "top_n": 1},
    "/pooling": {"input": "hi"},
    "/classify": {"input": ["good", "bad"]},
}
AUDIO_PATHS = ["/v1/audio/transcriptions", "/v1/audio/translations"]


@pytest.fixture(scope="module")
def gateway(
    pg_services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with gateway_with_policies(
        pg_services, tmp_path_factory.mktemp("policies"), extra_roles=EXTRA_ROLES
    ) as server:
        yield server


@pytest.fixture(scope="module")
def keys(pg_services: Services, gateway: LiveServer) -> dict[str, Caller]:
    """Callers made once for the module (a user costs a password hash), by role."""
    return {
        role: new_caller(pg_services, role)
        for role in ("everything", "app", "listener", "reranker", "auditor")
    }


def post(
    gateway: LiveServer, caller: Caller, path: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {caller.key}", **headers},
        timeout=timing.scaled(10),
    )


def post_audio(
    gateway: LiveServer,
    caller: Caller,
    path: str,
    fields: dict[str, str],
    audio: bytes = AUDIO,
    **headers: str,
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{path}",
        data=fields,
        files={"file": ("hello.wav", audio, "audio/wav")},
        headers={"Authorization": f"Bearer {caller.key}", **headers},
        timeout=timing.scaled(10),
    )


def sdk(gateway: LiveServer, caller: Caller) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=caller.key, max_retries=0)


def event_of(services: Services, request_id: str) -> AuditEvent:
    (event,) = wait_for_events(services, AuditEvent.request_id == request_id)
    return event


def no_personal_data(sent: Any) -> None:
    text = json.dumps(sent, ensure_ascii=False)
    assert EMAIL not in text and PHONE not in text, text
    assert "[EMAIL_1]" in text and "[CN_PHONE_1]" in text, text


# ------------------------------------------------------------------ forwarded


@pytest.mark.parametrize("path", sorted(BODIES))
def test_each_vllm_endpoint_reaches_the_upstream_with_its_key_and_request_id(
    gateway: LiveServer,
    keys: dict[str, Caller],
    standin_model: str,
    standin: VllmStandIn,
    pg_services: Services,
    path: str,
) -> None:
    request_id = unique("trace")
    answer = post(
        gateway,
        keys["everything"],
        path,
        {"model": standin_model, **BODIES[path]},
        **{"X-Request-Id": request_id},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-Id"] == request_id
    body = answer.json()
    assert body["stand_in"] == STAND_IN  # the stand-in's answer, unknown field and all
    if "model" in body:
        assert body["model"] == standin_model  # relabelled: the caller's name, not the served one
    got = standin.last(path)  # the same path upstream: vLLM's own (root or /v1)
    engine = EngineKeys.from_settings(pg_services.settings, create=False).authorization()
    assert got.headers["Authorization"] == engine  # the upstream's key, never the caller's
    assert got.headers["X-Request-Id"] == request_id
    assert got.json == {**BODIES[path], "model": BASE} | (
        {"max_output_tokens": 512} if path == "/v1/responses" else {}  # the role's cap
    )


@pytest.mark.parametrize("path", AUDIO_PATHS)
def test_audio_is_forwarded_as_a_form_with_the_file_untouched(
    gateway: LiveServer,
    keys: dict[str, Caller],
    standin_model: str,
    standin: VllmStandIn,
    pg_services: Services,
    path: str,
) -> None:
    request_id = unique("audio")
    fields = {"model": standin_model, "language": "en", "temperature": "0.2", "prompt": SECRET}
    answer = post_audio(gateway, keys["listener"], path, fields, **{"X-Request-Id": request_id})
    assert answer.status_code == 200, answer.text
    # The transcript is the model's own text: its phone number is masked.
    assert answer.json()["text"] == TRANSCRIPT.replace(MODEL_PHONE, MASKED_MODEL_PHONE)
    got = standin.last(path)
    assert got.files == {"file": AUDIO}
    assert got.form["model"] == [BASE] and got.form["language"] == ["en"]
    assert got.form["temperature"] == ["0.2"]
    no_personal_data(got.form["prompt"])  # the one text field of the form
    engine = EngineKeys.from_settings(pg_services.settings, create=False).authorization()
    assert got.headers["Authorization"] == engine
    assert got.headers["X-Request-Id"] == request_id
    event = event_of(pg_services, request_id)
    action = "api.audio.transcription" if "transcriptions" in path else "api.audio.translation"
    assert event.action == action and event.model == standin_model
    assert event.details["audio"] == {
        "bytes": len(AUDIO),
        "content_type": "audio/wav",
        "desensitized": False,
    }
    assert event.details["audio_seconds"] == 3


def test_audio_in_text_formats_and_streamed_is_output_scanned(
    gateway: LiveServer, keys: dict[str, Caller], standin_model: str
) -> None:
    path = "/v1/audio/transcriptions"
    plain = post_audio(
        gateway, keys["listener"], path, {"model": standin_model, "response_format": "text"}
    )
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
    assert plain.text == TRANSCRIPT.replace(MODEL_PHONE, MASKED_MODEL_PHONE)
    streamed = post_audio(
        gateway, keys["listener"], path, {"model": standin_model, "stream": "true"}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    chunks = [
        json.loads(line[5:])
        for line in streamed.text.splitlines()
        if line.startswith("data:") and line != "data: [DONE]"
    ]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == TRANSCRIPT.replace(MODEL_PHONE, MASKED_MODEL_PHONE)  # split in fours
    assert all(c["model"] == standin_model for c in chunks)
    assert streamed.text.rstrip().endswith("data: [DONE]")


def test_audio_over_the_body_limit_is_413_and_never_sent(
    gateway: LiveServer, keys: dict[str, Caller], standin_model: str, standin: VllmStandIn
) -> None:
    before = len(standin.sent("/v1/audio/transcriptions"))
    too_big = b"\0" * (1_048_576 + 1)  # max_body_bytes: 1 MiB
    answer = post_audio(
        gateway, keys["listener"], "/v1/audio/transcriptions", {"model": standin_model}, too_big
    )
    assert answer.status_code == 413
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert len(standin.sent("/v1/audio/transcriptions")) == before


# ------------------------------------------------------------------ desensitized


TEXT_FIELDS: dict[str, tuple[str, dict[str, Any]]] = {
    "responses input": ("/v1/responses", {"input": SECRET}),
    "responses input items": (
        "/v1/responses",
        {
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": SECRET}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": SECRET},
                {"type": "function_call_output", "call_id": "c1", "output": SECRET},
            ]
        },
    ),
    "responses instructions": ("/v1/responses", {"input": "hi", "instructions": SECRET}),
    "rerank query and documents": (
        "/rerank",
        {"query": f"mail {EMAIL}", "documents": [SECRET, "nothing"]},
    ),
    "score texts": ("/v1/score", {"text_1": SECRET, "text_2": [f"电话{PHONE}", EMAIL]}),
    "tokenize prompt": ("/tokenize", {"prompt": SECRET}),
    "tokenize messages": ("/tokenize", {"messages": [{"role": "user", "content": SECRET}]}),
    "pooling input": ("/pooling", {"input": [SECRET]}),
    "chat-style pooling": ("/pooling", {"messages": [{"role": "user", "content": SECRET}]}),
    "classify input": ("/classify", {"input": SECRET}),
}


@pytest.mark.parametrize("case", sorted(TEXT_FIELDS))
def test_personal_data_in_each_text_field_never_reaches_the_upstream(
    gateway: LiveServer,
    keys: dict[str, Caller],
    standin_model: str,
    standin: VllmStandIn,
    pg_services: Services,
    case: str,
) -> None:
    path, body = TEXT_FIELDS[case]
    answer = post(gateway, keys["everything"], path, {"model": standin_model, **body})
    assert answer.status_code == 200, answer.text
    no_personal_data(standin.last(path).json)
    event = event_of(pg_services, answer.headers["X-Request-Id"])
    assert set(event.details["privacy"]["input"]) == {"EMAIL", "CN_PHONE"}
    stored = json.dumps(event.details, ensure_ascii=False)
    assert EMAIL not in stored and PHONE not in stored


def test_rerank_documents_come_back_restored(
    gateway: LiveServer, keys: dict[str, Caller], standin_model: str, standin: VllmStandIn
) -> None:
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        answer = post(
            gateway,
            keys["reranker"],
            path,
            {"model": standin_model, "query": "q", "documents": [SECRET]},
        )
        assert answer.status_code == 200, answer.text
        assert standin.last(path).json["documents"] == ["Write to [EMAIL_1] or 电话[CN_PHONE_1]."]
        assert answer.json()["results"][0]["document"]["text"] == SECRET


def test_a_response_is_restored_and_output_scanned(
    gateway: LiveServer, keys: dict[str, Caller], standin_model: str, pg_services: Services
) -> None:
    client = sdk(gateway, keys["everything"])
    raw = client.responses.with_raw_response.create(model=standin_model, input=SECRET)
    response = raw.parse()
    assert response.model == standin_model
    assert response.output_text == f"You said: {SECRET} Call me at {MASKED_MODEL_PHONE}."
    event = event_of(pg_services, raw.http_response.headers["X-Request-Id"])
    assert event.action == "api.responses"
    assert (event.prompt_tokens, event.completion_tokens) == (
        RESPONSE_USAGE["input_tokens"],
        RESPONSE_USAGE["output_tokens"],
    )
    assert event.details["privacy"]["output"] == {"CN_PHONE": 1}
    assert event.details["finish_reason"] == "completed"


def test_streamed_response_events_are_restored_and_output_scanned(
    gateway: LiveServer,
    keys: dict[str, Caller],
    standin_model: str,
    standin: VllmStandIn,
    pg_services: Services,
) -> None:
    client = sdk(gateway, keys["everything"])
    request_id = unique("stream")
    events = list(
        client.responses.create(
            model=standin_model,
            input=SECRET,
            stream=True,
            extra_headers={"X-Request-Id": request_id},
        )
    )
    no_personal_data(standin.last("/v1/responses").json)
    expected = f"You said: {SECRET} Call me at {MASKED_MODEL_PHONE}."
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == expected  # placeholders restored though split between events
    (done,) = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == expected
    (part,) = [e for e in events if e.type == "response.content_part.done"]
    assert part.part.text == expected  # type: ignore[union-attr]
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == expected and completed.model == standin_model
    event = event_of(pg_services, request_id)
    assert event.action == "api.responses" and event.outcome == "success"
    assert (event.prompt_tokens, event.completion_tokens) == (
        RESPONSE_USAGE["input_tokens"],
        RESPONSE_USAGE["output_tokens"],
    )
    assert event.details["privacy"]["output"] == {"CN_PHONE": 1}


# ------------------------------------------------------------------ audited


@pytest.mark.parametrize(
    ("path", "action", "tokens"),
    [
        ("/v1/responses", "api.responses", (9, 6)),
        ("/tokenize", "api.tokenize", (None, None)),
        ("/detokenize", "api.detokenize", (None, None)),
        ("/score", "api.score", (7, 0)),
        ("/v1/score", "api.score", (7, 0)),
        ("/rerank", "api.rerank", (RERANK_TOKENS, None)),
        ("/v2/rerank", "api.rerank", (RERANK_TOKENS, None)),
        ("/pooling", "api.pooling", (POOLING_TOKENS, None)),
        ("/classify", "api.classify", (5, None)),
    ],
)
def test_each_call_is_audited_with_its_action_and_tokens(
    gateway: LiveServer,
    keys: dict[str, Caller],
    standin_model: str,
    pg_services: Services,
    path: str,
    action: str,
    tokens: tuple[int | None, int | None],
) -> None:
    answer = post(gateway, keys["everything"], path, {"model": standin_model, **BODIES[path]})
    assert answer.status_code == 200
    event = event_of(pg_services, answer.headers["X-Request-Id"])
    assert (event.action, event.model, event.status_code) == (action, standin_model, 200)
    assert (event.prompt_tokens, event.completion_tokens) == tokens
    assert event.url_path == path
    if path == "/tokenize":
        assert event.details["token_count"] == 3  # a count, not tokens used


# ------------------------------------------------------------------ RBAC and limits


def test_audio_needs_its_own_permission(
    gateway: LiveServer, keys: dict[str, Caller], standin_model: str, standin: VllmStandIn
) -> None:
    before = len(standin.sent("/v1/audio/transcriptions"))
    for role in ("app", "reranker", "auditor"):  # app may call every other endpoint
        refused = post_audio(
            gateway, keys[role], "/v1/audio/transcriptions", {"model": standin_model}
        )
        assert refused.status_code == 403, role
        assert "api:audio:invoke" in refused.json()["error"]["message"]
    assert len(standin.sent("/v1/audio/transcriptions")) == before
    assert post(
        gateway, keys["app"], "/v1/responses", {"model": standin_model, "input": "hi"}
    ).is_success
    # audio alone grants audio, and the caller's models, nothing else
    for path in ("/rerank", "/v1/responses", "/tokenize"):
        answer = post(gateway, keys["listener"], path, {"model": standin_model, **BODIES[path]})
        assert answer.status_code == 403, path
    listed = httpx.get(
        f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {keys['listener'].key}"}
    )
    assert standin_model in [m["id"] for m in listed.json()["data"]]


def test_rerank_is_granted_on_its_own(
    gateway: LiveServer, keys: dict[str, Caller], standin_model: str
) -> None:
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        assert post(
            gateway, keys["reranker"], path, {"model": standin_model, **BODIES[path]}
        ).is_success
    for path, needed in [
        ("/score", "api:score:invoke"),
        ("/v1/responses", "api:responses:invoke"),
        ("/tokenize", "api:tokenize:invoke"),
        ("/pooling", "api:pooling:invoke"),
        ("/classify", "api:classify:invoke"),
    ]:
        refused = post(gateway, keys["reranker"], path, {"model": standin_model, **BODIES[path]})
        assert refused.status_code == 403, path
        assert needed in refused.json()["error"]["message"]
    chat = post(
        gateway,
        keys["reranker"],
        "/v1/chat/completions",
        {"model": standin_model, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 403 and "api:model:invoke" in chat.json()["error"]["message"]


def test_a_key_scoped_to_other_models_may_not_rerank_this_one(
    gateway: LiveServer, pg_services: Services, standin_model: str
) -> None:
    scoped = new_caller(pg_services, "reranker", models="other-*")
    refused = post(gateway, scoped, "/rerank", {"model": standin_model, **BODIES["/rerank"]})
    assert refused.status_code == 403
    assert "api:rerank:invoke" in refused.json()["error"]["message"]


def test_the_limits_count_every_endpoint(
    gateway: LiveServer, pg_services: Services, standin_model: str
) -> None:
    caller = new_caller(pg_services, "everything")
    set_key_limits(pg_services, caller, rpm=3, tpd=1000)
    first = post(gateway, caller, "/rerank", {"model": standin_model, **BODIES["/rerank"]})
    assert first.headers["x-ratelimit-remaining-requests"] == "2"  # root paths say it too
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    deadline = timing.deadline(5)
    while True:  # the rerank's tokens are charged once its answer was sent
        listed = httpx.get(  # not counted, but says what is left
            f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {caller.key}"}
        )
        if listed.headers["x-ratelimit-remaining-tokens"] == str(1000 - RERANK_TOKENS):
            break
        assert time.monotonic() < deadline, listed.headers
        time.sleep(0.05)
    assert post(gateway, caller, "/tokenize", {"model": standin_model, "prompt": "hi"}).is_success
    assert post(
        gateway, caller, "/v1/responses", {"model": standin_model, "input": "hi"}
    ).is_success
    refused = post(gateway, caller, "/classify", {"model": standin_model, "input": "hi"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "3 requests per minute" in refused.json()["error"]["message"]


def test_the_role_caps_the_output_tokens_of_a_response(
    gateway: LiveServer, keys: dict[str, Caller], standin_model: str
) -> None:
    body = {"model": standin_model, "input": "hi", "max_output_tokens": 513}
    refused = post(gateway, keys["everything"], "/v1/responses", body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "max_output_tokens" and error["code"] == "max_tokens_exceeded"
    assert "max_output_tokens is 513" in error["message"]


def test_the_context_limit_holds_a_response(
    gateway: LiveServer, pg_services: Services, standin_model: str, standin: VllmStandIn
) -> None:
    """The input is counted by the upstream's /tokenize, as the chat it amounts to (the
    stand-in counts 3 tokens): what is left of the context caps max_output_tokens."""
    caller = new_caller(pg_services, "narrow")
    body = {"model": standin_model, "instructions": f"mail {EMAIL}", "input": "hi"}
    answer = post(gateway, caller, "/v1/responses", {**body, "max_output_tokens": 500})
    assert answer.status_code == 200, answer.text
    counted = standin.last("/tokenize").json
    assert counted["model"] == BASE
    assert counted["messages"] == [
        {"role": "system", "content": "mail [EMAIL_1]"},  # desensitized before counting
        {"role": "user", "content": "hi"},
    ]
    refused = post(gateway, caller, "/v1/responses", {**body, "max_output_tokens": 598})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "context_length_exceeded"
    post(gateway, caller, "/v1/responses", body)
    assert standin.last("/v1/responses").json["max_output_tokens"] == 597  # 600 - 3


# ------------------------------------------------------------------ validation


ACCEPTED_BY_VLLM: dict[str, tuple[str, dict[str, Any]]] = {
    "temperature above 2": ("/v1/chat/completions", {"temperature": 2.5}),
    "top_logprobs above 20": ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 25}),
    "n above 128": ("/v1/chat/completions", {"n": 200}),
    "a logit bias vLLM clamps": ("/v1/chat/completions", {"logit_bias": {"5": 150}}),
    "a custom role": ("/v1/chat/completions", {"messages": [{"role": "narrator", "content": "x"}]}),
    "allowed_tools": (
        "/v1/chat/completions",
        {
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "name": "f"}]},
            },
        },
    ),
    "custom tools": (
        "/v1/chat/completions",
        {
            "tools": [{"type": "custom", "custom": {"name": "sql", "format": {"type": "text"}}}],
            "tool_choice": {"type": "custom", "custom": {"name": "sql"}},
        },
    ),
    "unknown fields of a response": (
        "/v1/responses",
        {
            "input": [{"role": "user", "content": "hi", "some_item_field": 1}],
            "max_output_tokens": 4,
            "some_future_vllm_field": {"nested": [1, 2]},
            "kv_transfer_params": {"a": 1},
        },
    ),
    "unknown fields of a rerank": (
        "/v2/rerank",
        {"query": "q", "documents": ["d"], "return_documents": True, "mm_processor_kwargs": {}},
    ),
    "prompt_embeds": ("/v1/completions", {"prompt_embeds": "UEsDBBQAAAAIAA==", "max_tokens": 4}),
    "chat-style embeddings": (
        "/v1/embeddings",
        {"messages": [{"role": "user", "content": "embed me"}], "encoding_format": "float"},
    ),
}
CHAT_MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("case", sorted(ACCEPTED_BY_VLLM))
def test_what_vllm_accepts_reaches_the_upstream_untouched(
    gateway: LiveServer,
    keys: dict[str, Caller],
    standin_model: str,
    standin: VllmStandIn,
    case: str,
) -> None:
    path, fields = ACCEPTED_BY_VLLM[case]
    body = {"model": standin_model, **fields}
    if path == "/v1/chat/completions":
        body = {"messages": CHAT_MESSAGES, "max_tokens": 4, **body}
    answer = post(gateway, keys["everything"], path, body)
    assert answer.status_code == 200, answer.text
    assert standin.last(path).json == {**body, "model": BASE}


PROBES = ("/health", "/models")  # what the gateway asks of an upstream on its own
MALFORMED: dict[str, tuple[str, dict[str, Any] | bytes, str]] = {
    "responses without input": ("/v1/responses", {"instructions": "x"}, "input"),
    "responses input of a number": ("/v1/responses", {"input": 5}, "input"),
    "responses stream not a bool": ("/v1/responses", {"input": "x", "stream": "maybe"}, "stream"),
    "rerank documents not a list": ("/rerank", {"query": "q", "documents": "d"}, "documents"),
    "rerank without a query": ("/v2/rerank", {"documents": ["d"]}, "query"),
    "score without text_2": ("/score", {"text_1": "a"}, "text_2"),
    "tokenize without a prompt": ("/tokenize", {"add_special_tokens": True}, "prompt"),
    "detokenize words": ("/detokenize", {"tokens": ["one"]}, "tokens.0"),
    "pooling without input": ("/pooling", {"encoding_format": "float"}, "input"),
    "classify a number": ("/classify", {"input": 5}, "input"),
    "responses without a model": ("/v1/responses", {"input": "x"}, "model"),
    "tokenize in broken JSON": ("/tokenize", b'{"model": "m", "prompt": ', ""),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_to_the_new_endpoints_are_openai_400s(
    gateway: LiveServer,
    keys: dict[str, Caller],
    standin_model: str,
    standin: VllmStandIn,
    case: str,
) -> None:
    path, body, param = MALFORMED[case]

    def calls() -> int:  # the gateway's health probes and model cards may come any time
        return sum(not r.path.endswith(PROBES) for r in standin.received)

    before = calls()
    if isinstance(body, bytes):
        answer = httpx.post(
            f"{gateway.url}{path}",
            content=body,
            headers={"Authorization": f"Bearer {keys['everything'].key}"},
            timeout=timing.scaled(10),
        )
    else:
        with_model = body if param == "model" else {"model": standin_model, **body}
        answer = post(gateway, keys["everything"], path, with_model)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param and f"'{param}'" in error["message"]
    assert calls() == before  # refused before any upstream saw it


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"language": "en"}, "model"), ({"model": "m", "temperature": "warm"}, "temperature")],
)
def test_malformed_audio_forms_are_openai_400s(
    gateway: LiveServer, keys: dict[str, Caller], fields: dict[str, str], param: str
) -> None:
    answer = post_audio(gateway, keys["listener"], "/v1/audio/transcriptions", fields)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    as_json = post(gateway, keys["listener"], "/v1/audio/transcriptions", {"model": "m"})
    assert as_json.status_code == 400 and as_json.json()["error"]["param"] == "file"
    no_file = httpx.post(
        f"{gateway.url}/v1/audio/transcriptions",
        files={"model": (None, "m")},
        headers={"Authorization": f"Bearer {keys['listener'].key}"},
        timeout=timing.scaled(10),
    )
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
