"""The official OpenAI SDK against `appliance serve`: tools, structured output, logprobs, n.

The tiny model has random weights, so only behaviour is asserted: shapes, counts, finish
reasons, and that constrained output parses and validates. Where a random model may use up
``max_tokens`` before its constrained answer ends (``finish_reason`` "length", a prefix of a
valid answer, as in vLLM), several answers are drawn (``n``) and those that ended are checked.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion

from tests import timing
from tests.clients.conftest import (
    PERSON_SCHEMA,
    STRUCTURED_MAX_TOKENS,
    TIME_PARAMETERS,
    WEATHER_PARAMETERS,
    Api,
    validate,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# The tiny model's context is 512 tokens and a chat template with tools takes 250 or so.
TOOL_MAX_TOKENS = 110
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
MESSAGES: list[Any] = [{"role": "user", "content": "Weather?"}]


@pytest.fixture(scope="module")
def client(api: Api) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=api.base_url, api_key=api.api_key, max_retries=0, timeout=timing.scaled(120)
    ) as client:
        yield client


def check_calls(choice: Any, *, names: set[str]) -> None:
    """Every tool call is well formed: id, type, a known name, arguments valid for it."""
    calls = choice.message.tool_calls
    assert calls, choice
    for call in calls:
        assert call.type == "function"
        assert call.id.startswith("chatcmpl-tool-"), call.id
        assert call.function.name in names, call.function.name
        if choice.finish_reason != "length":  # the last one may be cut short
            validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


def ended(completion: ChatCompletion) -> list[Any]:
    """The choices that were not cut short by max_tokens, at least one."""
    done = [c for c in completion.choices if c.finish_reason != "length"]
    assert done, f"every answer hit max_tokens: {completion}"
    return done


def test_tool_choice_required_makes_valid_calls(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=TOOL_MAX_TOKENS,
        n=4,
        seed=11,
    )
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    for choice in completion.choices:
        check_calls(choice, names=set(PARAMETERS))
        assert len(choice.message.tool_calls or []) == 1  # parallel_tool_calls: false
    for choice in ended(completion):
        assert choice.finish_reason == "tool_calls"


def test_parallel_tool_calls_are_each_valid(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=True,
        max_tokens=TOOL_MAX_TOKENS,
        n=4,
        seed=3,
    )
    for choice in completion.choices:
        check_calls(choice, names=set(PARAMETERS))
        if choice.finish_reason != "length":
            assert choice.finish_reason == "tool_calls"
        ids = [call.id for call in choice.message.tool_calls or []]
        assert len(set(ids)) == len(ids), ids


def test_named_tool_choice_calls_that_tool_and_stops(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=TOOL_MAX_TOKENS,
        n=4,
        seed=5,
    )
    for choice in completion.choices:
        check_calls(choice, names={"get_weather"})
        assert len(choice.message.tool_calls or []) == 1
    for choice in ended(completion):
        assert choice.finish_reason == "stop"  # OpenAI's answer for a named choice


def test_tool_choice_auto_answers_text_or_valid_calls(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="auto",
        max_tokens=TOOL_MAX_TOKENS,
        n=4,
        seed=1,
    )
    assert len(completion.choices) == 4
    for choice in completion.choices:
        if choice.message.tool_calls:
            check_calls(choice, names=set(PARAMETERS))
            assert choice.finish_reason in {"tool_calls", "length"}
        else:
            assert isinstance(choice.message.content, str)
            assert choice.finish_reason in {"stop", "length"}


def test_tool_choice_none_makes_no_call(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="none",
        max_tokens=32,
        n=2,
        seed=2,
    )
    for choice in completion.choices:
        assert not choice.message.tool_calls
        assert isinstance(choice.message.content, str)
        assert choice.finish_reason in {"stop", "length"}


def test_streamed_tool_call_deltas(client: openai.OpenAI, api: Api) -> None:
    stream = client.chat.completions.create(
        model=api.model,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=TOOL_MAX_TOKENS,
        seed=11,
        stream=True,
    )
    firsts: list[Any] = []
    arguments: dict[int, str] = defaultdict(str)
    finish: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                if delta.id is not None:
                    firsts.append(delta)
                if delta.function is not None and delta.function.arguments:
                    arguments[delta.index] += delta.function.arguments
            if choice.finish_reason is not None:
                finish.append(choice.finish_reason)
    assert len(firsts) == 1, firsts  # parallel_tool_calls: false
    first = firsts[0]
    assert first.index == 0 and first.type == "function"
    assert first.id.startswith("chatcmpl-tool-")
    assert first.function is not None and first.function.name in PARAMETERS
    assert len(finish) == 1
    if finish[0] != "length":
        assert finish[0] == "tool_calls"
        validate(json.loads(arguments[0]), PARAMETERS[first.function.name])


def test_json_schema_strict_output_validates(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
        max_tokens=STRUCTURED_MAX_TOKENS,
        n=3,
        seed=0,
    )
    for choice in ended(completion):
        assert choice.finish_reason == "stop"
        validate(json.loads(choice.message.content or ""), PERSON_SCHEMA)


# xgrammar 0.2.9 constrains a length-bounded string (maxLength/minLength) to
# [^"\\\r\n], which lets raw control characters U+0000-U+001F into the string (not JSON,
# RFC 8259 section 7); the engine rewrites that rule (appliance/engine/structured.py).
BOUNDED: dict[str, Any] = {
    "type": "object",
    "properties": {"s": {"type": "string", "maxLength": 8}},
    "required": ["s"],
    "additionalProperties": False,
}


def test_json_schema_length_bounded_strings_are_valid_json(client: openai.OpenAI, api: Api) -> None:
    finished = 0
    for seed in (0, 8, 16, 24):
        completion = client.chat.completions.create(
            model=api.model,
            messages=[{"role": "user", "content": "person"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "p", "schema": BOUNDED, "strict": True},
            },
            max_tokens=STRUCTURED_MAX_TOKENS,
            n=8,
            seed=seed,
        )
        for choice in completion.choices:
            if choice.finish_reason == "length":
                continue
            finished += 1
            validate(json.loads(choice.message.content or ""), BOUNDED)  # no raw controls
    assert finished


def test_tool_arguments_with_length_bounded_strings_are_valid_json(
    client: openai.OpenAI, api: Api
) -> None:
    finished = 0
    for seed in (0, 8, 16, 24, 32):
        completion = client.chat.completions.create(
            model=api.model,
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": BOUNDED}}],
            tool_choice={"type": "function", "function": {"name": "f"}},
            max_tokens=150,
            n=8,
            seed=seed,
        )
        for choice in completion.choices:
            if choice.finish_reason == "length":
                continue
            finished += 1
            (call,) = choice.message.tool_calls or []
            validate(json.loads(call.function.arguments), BOUNDED)  # type: ignore[union-attr]
    assert finished


def test_json_object_output_parses(client: openai.OpenAI, api: Api) -> None:
    # A random model writes long keys: draw several answers and check those that ended.
    completion = client.chat.completions.create(
        model=api.model,
        messages=[{"role": "user", "content": "Answer in JSON."}],
        response_format={"type": "json_object"},
        max_tokens=STRUCTURED_MAX_TOKENS,
        temperature=1.0,
        n=8,
        seed=0,
    )
    for choice in completion.choices:
        assert (choice.message.content or "").lstrip().startswith("{"), choice.message.content
    for choice in ended(completion):
        assert choice.finish_reason == "stop"
        assert isinstance(json.loads(choice.message.content or ""), dict)


def check_chat_logprob(entry: Any, top: int) -> None:
    assert isinstance(entry.token, str)
    assert entry.logprob <= 0 and math.isfinite(entry.logprob)
    assert entry.bytes == list(entry.token.encode("utf-8")), entry
    assert len(entry.top_logprobs) == top
    values = [alt.logprob for alt in entry.top_logprobs]
    assert values == sorted(values, reverse=True)
    assert entry.logprob <= values[0] + 1e-4  # the first alternative is the most likely
    for alt in entry.top_logprobs:
        assert alt.bytes == list(alt.token.encode("utf-8"))


def test_chat_logprobs_and_top_logprobs(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=8,
        logprobs=True,
        top_logprobs=3,
        n=2,
        seed=4,
    )
    assert completion.usage is not None
    counted = 0
    for choice in completion.choices:
        assert choice.logprobs is not None and choice.logprobs.content
        for entry in choice.logprobs.content:
            check_chat_logprob(entry, top=3)
        counted += len(choice.logprobs.content)
        if choice.finish_reason == "length":
            assert len(choice.logprobs.content) == 8
    assert completion.usage.completion_tokens == counted


def test_chat_without_logprobs_has_none(client: openai.OpenAI, api: Api) -> None:
    completion = client.chat.completions.create(
        model=api.model, messages=[{"role": "user", "content": "Hello"}], max_tokens=4
    )
    assert completion.choices[0].logprobs is None


def test_completions_logprobs_with_echo(client: openai.OpenAI, api: Api) -> None:
    prompt = "Hello there"
    completion = client.completions.create(
        model=api.model, prompt=prompt, max_tokens=4, logprobs=2, echo=True, n=2, seed=6
    )
    assert completion.usage is not None
    prompt_tokens = completion.usage.prompt_tokens
    assert [c.index for c in completion.choices] == [0, 1]
    generated = 0
    for choice in completion.choices:
        assert choice.text.startswith(prompt)
        lp = choice.logprobs
        assert lp is not None and lp.tokens and lp.token_logprobs and lp.text_offset
        assert lp.top_logprobs is not None
        n_tokens = len(lp.tokens)
        assert len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n_tokens
        assert "".join(lp.tokens[:prompt_tokens]) == prompt
        assert "".join(lp.tokens) == choice.text
        # The first prompt token has nothing before it to be predicted from.
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        assert all(v is not None and v <= 0 for v in lp.token_logprobs[1:])
        for top in lp.top_logprobs[1:]:
            assert top is not None and 1 <= len(top) <= 3  # logprobs + 1 at most
        assert lp.text_offset[0] == 0
        for i in range(1, n_tokens):
            assert lp.text_offset[i] == lp.text_offset[i - 1] + len(lp.tokens[i - 1])
        generated += n_tokens - prompt_tokens
        if choice.finish_reason == "length":
            assert n_tokens - prompt_tokens == 4
    assert completion.usage.completion_tokens == generated


def test_completions_logprobs_without_echo(client: openai.OpenAI, api: Api) -> None:
    completion = client.completions.create(
        model=api.model, prompt="Hello there", max_tokens=5, logprobs=1, seed=6
    )
    choice = completion.choices[0]
    lp = choice.logprobs
    assert lp is not None and lp.tokens is not None and lp.token_logprobs is not None
    assert completion.usage is not None
    assert len(lp.tokens) == completion.usage.completion_tokens
    assert "".join(lp.tokens) == choice.text
    assert all(v is not None and v <= 0 for v in lp.token_logprobs)


def test_n_gives_that_many_choices(client: openai.OpenAI, api: Api) -> None:
    chat = client.chat.completions.create(
        model=api.model, messages=[{"role": "user", "content": "Hello"}], max_tokens=6, n=3
    )
    assert len(chat.choices) == 3
    assert sorted(c.index for c in chat.choices) == [0, 1, 2]
    assert chat.usage is not None
    assert chat.usage.completion_tokens <= 3 * 6
    if all(c.finish_reason == "length" for c in chat.choices):
        assert chat.usage.completion_tokens == 3 * 6
    text = client.completions.create(model=api.model, prompt="Hello", max_tokens=6, n=3)
    assert sorted(c.index for c in text.choices) == [0, 1, 2]


def test_streaming_with_n_and_logprobs(client: openai.OpenAI, api: Api) -> None:
    stream = client.chat.completions.create(
        model=api.model,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=6,
        n=3,
        logprobs=True,
        top_logprobs=2,
        seed=9,
        stream=True,
        stream_options={"include_usage": True},
    )
    roles: dict[int, list[str]] = defaultdict(list)
    content: dict[int, str] = defaultdict(str)
    logprobs: dict[int, list[Any]] = defaultdict(list)
    finish: dict[int, list[str]] = defaultdict(list)
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles[choice.index].append(choice.delta.role)
            content[choice.index] += choice.delta.content or ""
            if choice.logprobs is not None and choice.logprobs.content:
                logprobs[choice.index].extend(choice.logprobs.content)
            if choice.finish_reason is not None:
                finish[choice.index].append(choice.finish_reason)
    assert sorted(finish) == [0, 1, 2]
    for index in range(3):
        assert roles[index] == ["assistant"]
        assert len(finish[index]) == 1 and finish[index][0] in {"stop", "length"}
        assert logprobs[index], index
        for entry in logprobs[index]:
            check_chat_logprob(entry, top=2)
        if finish[index] == ["length"]:
            assert len(logprobs[index]) == 6
    assert usage is not None
    assert usage.completion_tokens == sum(len(v) for v in logprobs.values())


def test_streamed_answers_are_the_seeded_answers(client: openai.OpenAI, api: Api) -> None:
    """With a seed, streaming changes how an answer arrives, not what it is."""
    request: dict[str, Any] = {
        "model": api.model,
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 6,
        "n": 2,
        "seed": 21,
    }
    whole = client.chat.completions.create(**request)
    content: dict[int, str] = defaultdict(str)
    for chunk in client.chat.completions.create(**request, stream=True):
        for choice in chunk.choices:
            content[choice.index] += choice.delta.content or ""
    assert dict(content) == {c.index: c.message.content for c in whole.choices}
