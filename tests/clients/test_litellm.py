"""LiteLLM as a client of `appliance serve` (its "openai/" provider for any
OpenAI-compatible server): tools, json_schema, logprobs, n.

Only behaviour is asserted; the tiny model's text is random.
"""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest

from tests import timing
from tests.clients.conftest import (
    PERSON_SCHEMA,
    STRUCTURED_MAX_TOKENS,
    TIME_PARAMETERS,
    WEATHER_PARAMETERS,
    Api,
    validate,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    # LiteLLM's own types (a TypedDict of its GitHub Copilot login) on this pydantic.
    pytest.mark.filterwarnings("ignore:Item.* using the `ReadOnly` qualifier:UserWarning"),
]

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Time", "parameters": TIME_PARAMETERS},
    },
]
PARAMETERS = {"get_weather": WEATHER_PARAMETERS, "get_time": TIME_PARAMETERS}


def complete(api: Api, **kwargs: Any) -> Any:
    return litellm.completion(
        model=f"openai/{api.model}",
        api_base=api.base_url,
        api_key=api.api_key,
        num_retries=0,
        timeout=timing.scaled(120),
        **kwargs,
    )


def ended(choices: list[Any]) -> list[Any]:
    done = [c for c in choices if c.finish_reason != "length"]
    assert done, f"every answer hit max_tokens: {choices}"
    return done


def test_named_tool_choice(api: Api) -> None:
    response = complete(
        api,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=100,
        n=3,
        seed=1,
    )
    assert len(response.choices) == 3
    for choice in response.choices:
        assert len(choice.message.tool_calls) == 1
        assert choice.message.tool_calls[0].function.name == "get_weather"
    for choice in ended(response.choices):
        # The API answers "stop" for a named choice (OpenAI's); LiteLLM reports any "stop"
        # that carries tool calls as "tool_calls".
        assert choice.finish_reason in {"stop", "tool_calls"}
        call = choice.message.tool_calls[0]
        assert call.type == "function" and call.id.startswith("chatcmpl-tool-")
        validate(json.loads(call.function.arguments), WEATHER_PARAMETERS)


def test_required_tool_choice(api: Api) -> None:
    response = complete(
        api,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=100,
        n=3,
        seed=2,
    )
    for choice in response.choices:
        assert choice.message.tool_calls
    for choice in ended(response.choices):
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls
        validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


def test_response_format_json_schema(api: Api) -> None:
    response = complete(
        api,
        messages=[{"role": "user", "content": "A person, as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
        max_tokens=STRUCTURED_MAX_TOKENS,
        n=2,
        seed=1,
    )
    for choice in ended(response.choices):
        assert choice.finish_reason == "stop"
        validate(json.loads(choice.message.content), PERSON_SCHEMA)


def test_logprobs(api: Api) -> None:
    response = complete(
        api,
        messages=[{"role": "user", "content": "Hello"}],
        logprobs=True,
        top_logprobs=2,
        max_tokens=5,
    )
    content = response.choices[0].logprobs.content
    assert content
    for entry in content:
        assert isinstance(entry.token, str)
        assert entry.logprob <= 0
        assert entry.bytes == list(entry.token.encode("utf-8"))
        assert len(entry.top_logprobs) == 2
    assert response.usage.completion_tokens == len(content)


def test_n(api: Api) -> None:
    response = complete(api, messages=[{"role": "user", "content": "Hello"}], max_tokens=5, n=3)
    assert len(response.choices) == 3
    assert sorted(c.index for c in response.choices) == [0, 1, 2]
    for choice in response.choices:
        assert isinstance(choice.message.content, str)
        assert choice.finish_reason in {"stop", "length"}


def test_streaming_with_n(api: Api) -> None:
    stream = complete(
        api, messages=[{"role": "user", "content": "Hello"}], max_tokens=5, n=2, stream=True
    )
    indices: set[int] = set()
    finish: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                indices.add(choice.index)
            if choice.finish_reason is not None:
                finish.append(choice.finish_reason)
    # Both answers stream through; LiteLLM ends its stream at the first finish_reason.
    assert indices == {0, 1}
    assert finish and finish[0] in {"stop", "length"}
