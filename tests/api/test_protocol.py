"""The whole protocol through the gateway with the official OpenAI SDK, unchanged.

Generation runs on the built-in engine (``tiny_alias``); what reaches an upstream is
checked on a stand-in that records the JSON bodies it receives.
"""

from __future__ import annotations

import base64
import json
import struct
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from flask import Flask, Response, request

from appliance.auth.rbac import load_rbac
from appliance.config import SHIPPED_POLICIES
from appliance.models import AuditEvent
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests.api.conftest import Caller, new_caller
from tests.conftest import LiveServer, unique, wait_for_events

MESSAGES = [{"role": "user", "content": "Hello, 你好"}]
SERVED = "stand-in-served"
DEVELOPER_MAX_TOKENS = load_rbac(SHIPPED_POLICIES / "rbac.yaml").limits_of(["developer"]).max_tokens


class StandIn:
    """A fast OpenAI-compatible upstream that answers anything and records what it got."""

    def __init__(self) -> None:
        self.bodies: deque[dict[str, Any]] = deque(maxlen=64)
        app = Flask("stand-in")
        app.add_url_rule("/health", "health", lambda: {"status": "ok"})
        app.add_url_rule("/v1/<path:endpoint>", "answer", self._answer, methods=["POST"])
        self.server = LiveServer(app)
        self.url = self.server.url

    @property
    def last(self) -> dict[str, Any]:
        return self.bodies[-1]

    def _answer(self, endpoint: str) -> Any:
        body = request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        self.bodies.append(body)
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        envelope = {"id": "x-1", "created": 1, "model": str(body.get("model"))}
        if endpoint == "embeddings":
            return _embeddings(body, envelope["model"])
        if endpoint == "chat/completions":
            obj, choice = "chat.completion", {"message": {"role": "assistant", "content": "ok"}}
            delta = {"delta": {"content": "ok"}}
        else:
            obj, choice, delta = "text_completion", {"text": "ok"}, {"text": "ok"}
        if body.get("stream") is True:
            obj = f"{obj}.chunk" if obj == "chat.completion" else obj
            events = [
                {**envelope, "object": obj, "choices": [{"index": 0, **delta}]},
                {
                    **envelope,
                    "object": obj,
                    "choices": [{"index": 0, **delta, "finish_reason": "stop"}],
                },
                {**envelope, "object": obj, "choices": [], "usage": usage},
            ]
            lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
            return Response(lines, mimetype="text/event-stream")
        choice = {"index": 0, **choice, "logprobs": None, "finish_reason": "stop"}
        return {**envelope, "object": obj, "choices": [choice], "usage": usage}

    def stop(self) -> None:
        self.server.stop()


def _embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    raw = body.get("input")
    count = len(raw) if isinstance(raw, list) and raw and not isinstance(raw[0], int) else 1
    vector = [0.6, 0.8, 0.0]
    packed = base64.b64encode(struct.pack("<3f", *vector)).decode()
    value = packed if body.get("encoding_format") == "base64" else vector
    data = [{"object": "embedding", "index": i, "embedding": value} for i in range(count)]
    usage = {"prompt_tokens": 4, "total_tokens": 4}
    return {"object": "list", "data": data, "model": model, "usage": usage}


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stand_in_alias(pg_services: Services, stand_in: StandIn) -> str:
    name = unique("stand-in")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[stand_in.url], served_name=SERVED)
    return name


@pytest.fixture(scope="module")
def keys(pg_services: Services) -> dict[str, str]:
    """Keys made once for the module (a user costs a password hash): by what they may do."""
    return {
        label: new_caller(pg_services, role, models).key
        for label, role, models in [
            ("good", "developer", "*"),
            ("auditor", "auditor", "*"),
            ("out-of-scope", "developer", "other-*"),
        ]
    }


@pytest.fixture(scope="module")
def shared(api_server: LiveServer, keys: dict[str, str]) -> openai.OpenAI:
    """A client for tests that do not look at their own audit events."""
    return sdk(api_server, keys["good"])


def events_of(services: Services, username: str) -> list[AuditEvent]:
    return wait_for_events(services, AuditEvent.actor == username)


def sdk(api_server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=key, max_retries=0)


# ------------------------------------------------------------------ on the engine


def test_completion_non_streaming_and_streaming_agree(
    client: openai.OpenAI, caller: Caller, tiny_alias: str, pg_services: Services
) -> None:
    params: dict[str, Any] = dict(
        model=tiny_alias, prompt="Once upon a time", max_tokens=8, temperature=0.0
    )
    whole = client.completions.create(**params)
    assert whole.object == "text_completion" and whole.model == tiny_alias
    assert whole.choices[0].finish_reason in {"stop", "length"}
    assert whole.usage is not None and 1 <= whole.usage.completion_tokens <= 8
    chunks = list(
        client.completions.create(**params, stream=True, stream_options={"include_usage": True})
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert all(c.model == tiny_alias for c in chunks)
    (last,) = [c for c in chunks if c.usage is not None]
    assert last.choices == [] and last.usage == whole.usage
    plain = list(client.completions.create(**params, stream=True))
    assert all(c.usage is None for c in plain)
    assert [e.action for e in events_of(pg_services, caller.username)][:1] == ["api.completion"]
    assert events_of(pg_services, caller.username)[0].completion_tokens == (
        whole.usage.completion_tokens
    )


def test_embeddings_base64_by_default_and_float(
    client: openai.OpenAI, caller: Caller, tiny_alias: str, pg_services: Services
) -> None:
    default = client.embeddings.create(model=tiny_alias, input=["first text", "second"])
    floats = client.embeddings.create(
        model=tiny_alias, input=["first text", "second"], encoding_format="float"
    )
    assert default.model == floats.model == tiny_alias
    assert [d.index for d in default.data] == [0, 1]
    size = len(floats.data[0].embedding)
    assert size > 1 and all(len(d.embedding) == size for d in default.data + floats.data)
    for a, b in zip(default.data, floats.data, strict=True):
        assert list(a.embedding) == pytest.approx(b.embedding, abs=1e-6)
    assert default.usage.prompt_tokens == floats.usage.prompt_tokens > 0
    raw = client.embeddings.with_raw_response.create(
        model=tiny_alias, input="x", encoding_format="base64"
    )
    assert isinstance(json.loads(raw.text)["data"][0]["embedding"], str)
    first = events_of(pg_services, caller.username)[0]
    assert (first.action, first.model) == ("api.embeddings", tiny_alias)
    assert first.prompt_tokens == default.usage.prompt_tokens


def test_chat_accepts_the_openai_and_vllm_parameters(
    shared: openai.OpenAI, tiny_alias: str
) -> None:
    reply = shared.chat.completions.create(
        model=tiny_alias,
        messages=MESSAGES,
        max_completion_tokens=6,
        temperature=0.7,
        top_p=0.9,
        n=1,
        seed=11,
        stop=["\n\n", "END"],
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logit_bias={"5": -100, "6": 2.5},
        user="app-user-1",
        extra_body={"top_k": 5, "repetition_penalty": 1.1, "min_p": 0.05, "ignore_eos": False},
    )
    assert reply.model == tiny_alias and reply.choices[0].message.role == "assistant"
    # Structured output reaches the engine through the gateway and is enforced there.
    guided = shared.chat.completions.create(
        model=tiny_alias,
        messages=MESSAGES,
        max_completion_tokens=6,
        extra_body={"guided_choice": ["yes", "no"]},
    )
    assert guided.choices[0].message.content in {"yes", "no"}


# What vLLM refuses too, or what is not even of the right type. What vLLM accepts passes
# (temperature 2.5, top_logprobs 25, n 200, a logit bias of 101, which vLLM clamps):
# test_what_vllm_accepts_reaches_the_upstream_untouched.
@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"temperature": -0.5}, "temperature"),
        ({"extra_body": {"temperature": "hot"}}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"presence_penalty": 2.1}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"top_logprobs": -1, "logprobs": True}, "top_logprobs"),
        ({"extra_body": {"logit_bias": {"5": "high"}}}, "logit_bias.5"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": 2**64}, "seed"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"extra_body": {"top_k": -2}}, "top_k"),
        ({"extra_body": {"min_p": 1.5}}, "min_p"),
        ({"extra_body": {"repetition_penalty": 0}}, "repetition_penalty"),
        ({"extra_body": {"min_tokens": -1}}, "min_tokens"),
    ],
)
def test_out_of_range_chat_parameters_are_400_naming_them(
    shared: openai.OpenAI, tiny_alias: str, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        shared.chat.completions.create(model=tiny_alias, messages=MESSAGES, **params)
    assert raised.value.param == param
    assert f"'{param}'" in raised.value.message


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda c, m: c.completions.create(model=m, prompt="x", logprobs=-1), "logprobs"),
        (lambda c, m: c.completions.create(model=m, prompt=[]), "prompt"),
        (lambda c, m: c.completions.create(model=m, prompt="x", best_of=0), "best_of"),
        (lambda c, m: c.embeddings.create(model=m, input=[]), "input"),
        (lambda c, m: c.embeddings.create(model=m, input="x", dimensions=0), "dimensions"),
        (
            lambda c, m: c.embeddings.create(model=m, input="x", encoding_format="hex"),
            "encoding_format",
        ),
        # refused by the engine and relayed as it answered
        (lambda c, m: c.embeddings.create(model=m, input="x", dimensions=3), "dimensions"),
    ],
)
def test_invalid_completion_and_embedding_requests_are_400(
    shared: openai.OpenAI, tiny_alias: str, call: Callable[..., Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        call(shared, tiny_alias)
    assert raised.value.param == param


ENDPOINT_CALLS: dict[str, Callable[[openai.OpenAI, str], Any]] = {
    "chat": lambda c, m: c.chat.completions.create(model=m, messages=MESSAGES, max_tokens=2),
    "chat-stream": lambda c, m: c.chat.completions.create(
        model=m, messages=MESSAGES, max_tokens=2, stream=True
    ),
    "completion": lambda c, m: c.completions.create(model=m, prompt="x", max_tokens=2),
    "completion-stream": lambda c, m: c.completions.create(
        model=m, prompt="x", max_tokens=2, stream=True
    ),
    "embedding": lambda c, m: c.embeddings.create(model=m, input="x"),
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINT_CALLS))
def test_typed_sdk_errors_on_every_endpoint(
    api_server: LiveServer, keys: dict[str, str], tiny_alias: str, endpoint: str
) -> None:
    call = ENDPOINT_CALLS[endpoint]
    good = sdk(api_server, keys["good"])
    with pytest.raises(openai.AuthenticationError):
        call(sdk(api_server, "sk-app-wrongwrongwrongwrongwrongwrong"), tiny_alias)
    with pytest.raises(openai.PermissionDeniedError, match="api:model:invoke"):
        call(sdk(api_server, keys["auditor"]), tiny_alias)
    with pytest.raises(openai.PermissionDeniedError, match="not granted"):
        call(sdk(api_server, keys["out-of-scope"]), tiny_alias)
    with pytest.raises(openai.NotFoundError) as raised:
        call(good, "no-such-model")
    assert raised.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        call(good, "bad\x00name")
    with pytest.raises(openai.BadRequestError):
        call(good, "")


def test_models_endpoint_errors(api_server: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(api_server, "sk-app-wrongwrongwrongwrongwrongwrong").models.list()


# ------------------------------------------------------------------ on the stand-in


def test_vllm_extras_and_tools_reach_the_upstream_unchanged(
    shared: openai.OpenAI, stand_in: StandIn, stand_in_alias: str
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    extras = {
        "top_k": 5,
        "min_p": 0.1,
        "repetition_penalty": 1.1,
        "length_penalty": 0.9,
        "ignore_eos": True,
        "min_tokens": 2,
        "skip_special_tokens": False,
        "guided_json": {"type": "object"},
        "guided_choice": ["yes", "no"],
        "chat_template_kwargs": {"enable_thinking": False},
        "some_future_vllm_field": {"nested": [1, 2]},
    }
    sent: dict[str, Any] = dict(
        messages=[*MESSAGES, {"role": "assistant", "content": None, "tool_calls": []}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        logprobs=True,
        top_logprobs=3,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
        },
    )
    reply = shared.chat.completions.create(model=stand_in_alias, **sent, extra_body=extras)
    assert reply.model == stand_in_alias
    received = dict(stand_in.last)
    assert received.pop("model") == SERVED
    # The role's cap on max_tokens (developer: 4096) is sent when the client set none.
    assert received == {**sent, **extras, "max_tokens": DEVELOPER_MAX_TOKENS}


def test_streams_ask_the_upstream_for_usage_and_are_relabelled(
    shared: openai.OpenAI, stand_in: StandIn, stand_in_alias: str
) -> None:
    chunks = list(
        shared.completions.create(
            model=stand_in_alias, prompt=[1, 2, 3], stream=True, extra_body={"top_k": 3}
        )
    )
    assert stand_in.last == {
        "model": SERVED,
        "prompt": [1, 2, 3],
        "stream": True,
        "top_k": 3,
        "stream_options": {"include_usage": True},
        "max_tokens": DEVELOPER_MAX_TOKENS,  # the role's cap, as the client set none
    }
    assert all(c.model == stand_in_alias for c in chunks)
    assert all(c.usage is None for c in chunks)  # not asked for, so not passed on
    assert "".join(c.choices[0].text for c in chunks) == "okok"


def test_embedding_parameters_reach_the_upstream(
    shared: openai.OpenAI, stand_in: StandIn, stand_in_alias: str
) -> None:
    result = shared.embeddings.create(
        model=stand_in_alias, input=["a", "b"], dimensions=3, user="u-1"
    )
    assert stand_in.last == {
        "model": SERVED,
        "input": ["a", "b"],
        "dimensions": 3,
        "user": "u-1",
        "encoding_format": "base64",
    }
    assert [list(d.embedding) for d in result.data] == [pytest.approx([0.6, 0.8, 0.0])] * 2
    assert result.model == stand_in_alias
