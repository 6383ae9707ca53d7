"""Personal data through the gateway: the upstream never sees it, the caller gets it back.

The upstream here is a stand-in that records every body it receives and answers with the
user's message (streamed three characters at a time, so placeholders are split across
chunks): what it received is exactly what reached "the model".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from flask import Flask, Response, request

from appliance.models import AuditEvent
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests.api.conftest import gateway_with_policies, new_caller
from tests.conftest import LiveServer, unique, wait_for_events

PHONE, RESIDENT_ID, CARD = "13812345678", "11010519491231002X", "6222 0212 3456 7894"
SECRET = f"我的电话{PHONE}，身份证{RESIDENT_ID}，卡号{CARD}。请复述。"
EXTRA_ROLES = """
  strict:
    description: may not send resident ids at all
    permissions: [api:model:invoke]
    models: ["*"]
"""
PRIVACY = """
actions:
  CN_RESIDENT_ID: pseudonymize
  CN_PHONE: pseudonymize
  BANK_CARD: pseudonymize
  PERSON: pseudonymize
  ADDRESS: pseudonymize
restore: true
output: mask
overrides:
  roles:
    strict: {CN_RESIDENT_ID: block}
"""


class EchoUpstream:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        app = Flask("echo")
        app.add_url_rule("/health", "health", lambda: {"status": "ok"})
        app.add_url_rule("/v1/chat/completions", "chat", self.chat, methods=["POST"])
        app.add_url_rule("/v1/embeddings", "embeddings", self.embeddings, methods=["POST"])
        self.server = LiveServer(app)

    def chat(self) -> Any:
        body = request.get_json()
        with self.lock:
            self.bodies.append(body)
        said = body["messages"][-1]["content"] + " 另外，我的号码是13912345678。"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            message = {"role": "assistant", "content": said}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [choice], "usage": usage}  # fmt: skip
        return Response(self._chunks(body["model"], said, usage), mimetype="text/event-stream")

    def embeddings(self) -> Any:
        body = request.get_json()
        with self.lock:
            self.bodies.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5, 0.5]} for i in range(len(inputs))
        ]
        usage = {"prompt_tokens": 4, "total_tokens": 4}
        return {"object": "list", "data": data, "model": body["model"], "usage": usage}

    @staticmethod
    def _chunks(model: str, said: str, usage: dict[str, int]) -> Iterator[bytes]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model}
            return f"data: {json.dumps({**chunk, 'choices': choices, **extra})}\n\n".encode()

        for i in range(0, len(said), 3):
            yield event([{"index": 0, "delta": {"content": said[i : i + 3]}}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        yield event([], usage=usage)
        yield b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoUpstream]:
    upstream = EchoUpstream()
    yield upstream
    upstream.server.stop()


@pytest.fixture(scope="module")
def gateway(
    pg_services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("policies")
    with gateway_with_policies(
        pg_services, folder, extra_roles=EXTRA_ROLES, privacy=PRIVACY
    ) as server:
        yield server


@pytest.fixture(scope="module")
def model(pg_services: Services, echo: EchoUpstream) -> str:
    name = unique("echo")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[echo.server.url])
    return name


def client_for(gateway: LiveServer, pg_services: Services, role: str = "app") -> openai.OpenAI:
    key = new_caller(pg_services, role=role).key
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def assert_nothing_leaked(echo: EchoUpstream) -> None:
    sent = json.dumps(echo.bodies[-1], ensure_ascii=False)
    for value in (PHONE, RESIDENT_ID, CARD, CARD.replace(" ", "")):
        assert value not in sent
    assert "[CN_PHONE_1]" in sent and "[CN_RESIDENT_ID_1]" in sent and "[BANK_CARD_1]" in sent


@pytest.mark.parametrize("stream", [False, True])
def test_the_upstream_never_sees_personal_data_and_the_caller_gets_it_back(
    gateway: LiveServer, pg_services: Services, echo: EchoUpstream, model: str, stream: bool
) -> None:
    client = client_for(gateway, pg_services)
    messages = [{"role": "user", "content": SECRET}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        answer = reply.choices[0].message.content or ""
    assert_nothing_leaked(echo)
    assert answer.startswith(SECRET)  # every placeholder restored, split or not
    # The number the model made up itself is masked, in streams too (split in 3s).
    assert answer.endswith("另外，我的号码是139****5678。")


def test_embeddings_input_is_desensitized(
    gateway: LiveServer, pg_services: Services, echo: EchoUpstream, model: str
) -> None:
    client = client_for(gateway, pg_services)
    result = client.embeddings.create(model=model, input=[SECRET, f"only {PHONE}"])
    assert len(result.data) == 2
    assert_nothing_leaked(echo)
    assert echo.bodies[-1]["input"][1] == "only [CN_PHONE_1]"  # one request, one mapping


def test_the_audit_event_counts_types_never_values(
    gateway: LiveServer, pg_services: Services, model: str
) -> None:
    caller = new_caller(pg_services, role="app")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=caller.key, max_retries=0)
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": SECRET}])
    (event,) = wait_for_events(pg_services, AuditEvent.api_key_prefix == caller.prefix)
    privacy = event.details["privacy"]
    assert privacy["input"] == {
        "CN_PHONE": {"pseudonymize": 1},
        "CN_RESIDENT_ID": {"pseudonymize": 1},
        "BANK_CARD": {"pseudonymize": 1},
    }
    assert privacy["output"] == {"CN_PHONE": 1}
    stored = json.dumps(event.details, ensure_ascii=False)
    assert PHONE not in stored and RESIDENT_ID not in stored


def test_a_block_policy_refuses_the_request(
    gateway: LiveServer, pg_services: Services, echo: EchoUpstream, model: str
) -> None:
    caller = new_caller(pg_services, role="strict")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=caller.key, max_retries=0)
    before = len(echo.bodies)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": SECRET}])
    assert refused.value.code == "personal_data_blocked"
    assert "CN_RESIDENT_ID" in refused.value.message and RESIDENT_ID not in refused.value.message
    assert len(echo.bodies) == before
    (blocked,) = wait_for_events(pg_services, AuditEvent.api_key_prefix == caller.prefix)
    assert blocked.status_code == 400
    assert blocked.details["privacy"] == {"blocked": "CN_RESIDENT_ID"}


def test_a_named_conversation_keeps_placeholders_across_requests(
    gateway: LiveServer, pg_services: Services, echo: EchoUpstream, model: str
) -> None:
    client = client_for(gateway, pg_services)
    conversation = {"X-Conversation-Id": unique("conv")}
    other = "13987654321"

    def ask(text: str, headers: dict[str, str]) -> tuple[str, str]:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}], extra_headers=headers
        )
        return reply.choices[0].message.content or "", echo.bodies[-1]["messages"][0]["content"]

    _, seen = ask(f"记住{PHONE}", conversation)
    assert seen == "记住[CN_PHONE_1]"
    _, seen = ask(f"还有{other}和{PHONE}", conversation)
    assert seen == "还有[CN_PHONE_2]和[CN_PHONE_1]"  # the same value, the same placeholder
    # A placeholder from an earlier request is put back in a later answer.
    answer, seen = ask("[CN_PHONE_2]是谁的？", conversation)
    assert seen == "[CN_PHONE_2]是谁的？" and answer.startswith(f"{other}是谁的？")
    # Without the header (or in another key's conversation) it is only text.
    answer, _ = ask("[CN_PHONE_2]是谁的？", {})
    assert answer.startswith("[CN_PHONE_2]是谁的？")
    with pytest.raises(openai.BadRequestError) as refused:
        ask("hi", {"X-Conversation-Id": "not valid!"})
    assert refused.value.code == "invalid_conversation_id"


def test_every_text_field_is_desensitized_through_the_gateway(
    gateway: LiveServer, pg_services: Services, echo: EchoUpstream, model: str
) -> None:
    """The end-user id, a speaker's name, tool-call arguments and tool results in the
    history: none reaches the upstream in clear (official SDK, a real gateway)."""
    client = client_for(gateway, pg_services)
    messages = [
        {"role": "user", "name": f"caller{PHONE}", "content": f"card {CARD}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"id": RESIDENT_ID})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"phone": PHONE})},
        {"role": "user", "content": "请复述。"},
    ]
    client.chat.completions.create(model=model, messages=messages, user=f"end-user {PHONE}")  # type: ignore[arg-type]
    assert_nothing_leaked(echo)
    sent = echo.bodies[-1]
    assert sent["user"] == "end-user [CN_PHONE_1]"
    assert json.loads(sent["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "id": "[CN_RESIDENT_ID_1]"
    }


@pytest.mark.parametrize("stream", [False, True])
def test_names_and_addresses_never_reach_the_upstream(
    gateway: LiveServer, pg_services: Services, echo: EchoUpstream, model: str, stream: bool
) -> None:
    """PERSON and ADDRESS are pseudonymized like any type and come back restored, whole and
    streamed (the official SDK through a real gateway)."""
    client = client_for(gateway, pg_services)
    said = "患者张伟，男，45岁，住址：上海市浦东新区张江路88号3幢2单元501室。Dear Mary Johnson,"
    messages = [{"role": "user", "content": said}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        answer = reply.choices[0].message.content or ""
    sent = json.dumps(echo.bodies[-1], ensure_ascii=False)
    for value in ("张伟", "张江路88号", "3幢2单元501室", "Mary Johnson"):
        assert value not in sent
    assert "[PERSON_1]" in sent and "[ADDRESS_1]" in sent and "[PERSON_2]" in sent
    assert answer.startswith(said)  # restored for the caller, split or not
