"""Role limits from a policy of the tests' own: max_context (prompt + completion tokens,
counted by the upstream only when needed) and a requests-per-minute budget shared by all
callers of a role."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from appliance.limits import prompt_token_bound
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests.api.conftest import Caller, gateway_with_policies, new_caller
from tests.conftest import LiveServer, unique
from tests.upstream.test_pool import Stub

EXTRA_ROLES = """
  tight:
    description: a small context, for these tests
    permissions: [api:model:invoke]
    models: ["*"]
    limits:
      max_context: 96
  roomy:
    description: a context no test prompt comes near
    permissions: [api:model:invoke]
    models: ["*"]
    limits:
      max_context: 100000
  pooled:
    description: three requests a minute for all its callers together
    permissions: [api:model:invoke]
    models: ["*"]
    limits:
      requests_per_minute: 100
      shared_requests_per_minute: 3
"""
LONG = "tell me everything about " + "the quick brown fox " * 40  # far over 96 tokens


@pytest.fixture(scope="module")
def gateway(
    pg_services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("policies")
    with gateway_with_policies(pg_services, folder, extra_roles=EXTRA_ROLES) as server:
        yield server


def sdk(server: LiveServer, caller: Caller) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=caller.key, max_retries=0)


def test_a_prompt_over_the_limit_is_refused(
    gateway: LiveServer, pg_services: Services, tiny_alias: str
) -> None:
    client = sdk(gateway, new_caller(pg_services, role="tight"))
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=tiny_alias, messages=[{"role": "user", "content": LONG}]
        )
    assert refused.value.code == "context_length_exceeded"
    assert "exceed this key's context limit of 96 tokens" in refused.value.message
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=tiny_alias, prompt=LONG, max_tokens=1)


def test_max_tokens_is_held_to_what_the_context_leaves(
    gateway: LiveServer, pg_services: Services, tiny_alias: str
) -> None:
    client = sdk(gateway, new_caller(pg_services, role="tight"))
    messages = [{"role": "user", "content": "hi"}]
    answer = client.chat.completions.create(model=tiny_alias, messages=messages)  # type: ignore[arg-type]
    assert answer.usage is not None
    assert answer.usage.prompt_tokens + answer.usage.completion_tokens <= 96
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=tiny_alias, messages=messages, max_tokens=95)  # type: ignore[arg-type]
    assert refused.value.body["param"] == "max_tokens"  # type: ignore[index]
    short = client.completions.create(model=tiny_alias, prompt="hello")
    assert short.usage is not None
    assert short.usage.prompt_tokens + short.usage.completion_tokens <= 96


def test_counting_is_skipped_when_the_request_cannot_exceed(
    gateway: LiveServer, pg_services: Services
) -> None:
    stub = Stub("no-tokenizer")  # serves chat, has no /tokenize
    model = unique("counted")
    with pg_services.db.session() as session:
        add_model(session, model, upstream_urls=[stub.url])
    try:
        client = sdk(gateway, new_caller(pg_services, role="roomy"))
        messages = [{"role": "user", "content": "hi"}]
        answer = client.chat.completions.create(model=model, messages=messages, max_tokens=64)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "no-tokenizer"
        with pytest.raises(openai.InternalServerError) as unknown:  # 503: it must count
            client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        assert unknown.value.status_code == 503
        assert "does not count tokens" in unknown.value.message
        assert stub.hits == 1
    finally:
        stub.stop()


@pytest.mark.parametrize(
    "texts",
    [["hi"], ["你好世界" * 50], ["naïve café " * 30, "ok", "🙂" * 40], ["a b c " * 200]],
)
def test_the_bound_is_never_below_the_real_count(
    engine_server: LiveServer, texts: list[str]
) -> None:
    messages = [{"role": "user", "content": text} for text in texts]
    body = json.dumps({"model": "tiny-served", "messages": messages}).encode()
    counted = httpx.post(f"{engine_server.url}/tokenize", content=body).json()["count"]
    assert counted <= prompt_token_bound(len(body), len(messages))


def test_a_shared_role_budget_holds_all_its_callers_together(
    gateway: LiveServer, pg_services: Services, tiny_alias: str
) -> None:
    callers = [sdk(gateway, new_caller(pg_services, role="pooled")) for _ in range(2)]
    messages = [{"role": "user", "content": "hi"}]
    for i in range(3):  # each key is far under its own 100 a minute
        callers[i % 2].chat.completions.create(model=tiny_alias, messages=messages, max_tokens=1)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as refused:
        callers[1].chat.completions.create(model=tiny_alias, messages=messages, max_tokens=1)  # type: ignore[arg-type]
    assert "shared by role 'pooled'" in refused.value.message
    assert int(refused.value.response.headers["Retry-After"]) >= 1
