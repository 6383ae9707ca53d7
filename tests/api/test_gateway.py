"""The gateway end to end with the official OpenAI SDK: answers, streams and audit events."""

from __future__ import annotations

import openai

from appliance.models import AuditEvent
from appliance.services import Services
from tests.api.conftest import Caller
from tests.conftest import wait_for_events

MESSAGES = [{"role": "user", "content": "Hello, 你好, what is the capital?"}]


def audit_events_of(services: Services, username: str, expect: int = 1) -> list[AuditEvent]:
    return wait_for_events(services, AuditEvent.actor == username, expect=expect)


def test_chat_completion_is_generated_upstream_and_audited(
    client: openai.OpenAI, caller: Caller, tiny_alias: str, pg_services: Services
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=tiny_alias, messages=MESSAGES, max_tokens=12, seed=7, temperature=0.8
    )
    completion = raw.parse()
    assert completion.model == tiny_alias
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 12
    # The same seed through the gateway gives the same generated text.
    again = client.chat.completions.create(
        model=tiny_alias, messages=MESSAGES, max_tokens=12, seed=7, temperature=0.8
    )
    assert again.choices[0].message.content == completion.choices[0].message.content

    events = audit_events_of(pg_services, caller.username, expect=2)
    first = events[0]
    assert first.action == "api.chat.completion"
    assert first.outcome == "success"
    assert first.status_code == 200
    assert first.model == tiny_alias
    assert first.api_key_prefix == caller.prefix
    assert first.prompt_tokens == completion.usage.prompt_tokens
    assert first.completion_tokens == completion.usage.completion_tokens
    assert first.request_id == raw.headers["x-request-id"]
    assert first.duration_ms is not None and first.duration_ms > 0
    assert caller.key not in str(first.details)


def test_streaming_with_usage_matches_non_streaming(
    client: openai.OpenAI, caller: Caller, tiny_alias: str, pg_services: Services
) -> None:
    params = dict(model=tiny_alias, messages=MESSAGES, max_tokens=10, seed=3, temperature=0.0)
    expected = client.chat.completions.create(**params).choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert all(c.model == tiny_alias for c in chunks)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    events = audit_events_of(pg_services, caller.username, expect=2)
    assert events[1].outcome == "success"
    assert events[1].completion_tokens == usage_chunks[0].usage.completion_tokens


def test_streaming_without_usage_still_accounts_tokens(
    client: openai.OpenAI, caller: Caller, tiny_alias: str, pg_services: Services
) -> None:
    stream = client.chat.completions.create(
        model=tiny_alias, messages=MESSAGES, max_tokens=6, seed=1, stream=True
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
    (event,) = audit_events_of(pg_services, caller.username)
    assert event.completion_tokens is not None and event.completion_tokens >= 1
    assert event.prompt_tokens is not None and event.prompt_tokens > 0


def test_models_lists_only_what_the_key_may_call(api_server, make_caller, tiny_alias: str) -> None:
    everything = make_caller(models="*")
    scoped = make_caller(models="nothing-*")
    listed = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=everything.key).models.list()
    assert tiny_alias in [m.id for m in listed.data]
    none = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=scoped.key).models.list()
    assert none.data == []
