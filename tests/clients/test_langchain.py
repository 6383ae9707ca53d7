"""LangChain's ChatOpenAI against `appliance serve`: bind_tools, with_structured_output
(each method), logprobs and n.

The tiny model's answers are random: only shapes, validity and counts are asserted. A
constrained answer may be cut by max_tokens (vLLM answers a prefix then, with
``finish_reason`` "length"), so the structured tests try a few seeds and check every
answer that ended, and that at least one did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests import timing
from tests.clients.conftest import STRUCTURED_MAX_TOKENS, Api, validate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEEDS = (0, 1, 2, 3, 4, 5)


class GetWeather(BaseModel):
    """Weather"""

    city: Literal["Paris", "Oslo", "Lima"]
    days: int = Field(ge=1, le=7)


class GetTime(BaseModel):
    """Time"""

    utc: bool


class Person(BaseModel):
    name: str = Field(pattern=r"^[a-z]{1,8}$")
    age: int = Field(ge=0, le=120)
    member: bool


def chat(api: Api, **kwargs: Any) -> ChatOpenAI:
    settings: dict[str, Any] = {"max_tokens": 100, **kwargs}
    return ChatOpenAI(
        model=api.model,
        base_url=api.base_url,
        api_key=api.api_key,  # type: ignore[arg-type]
        max_retries=0,
        timeout=timing.scaled(120),
        **settings,
    )


def ended(results: Iterable[Any], cut: Callable[[Any], bool]) -> list[Any]:
    done = [r for r in results if not cut(r)]
    assert done, "every answer hit max_tokens"
    return done


def cut_message(message: AIMessage) -> bool:
    return message.response_metadata.get("finish_reason") == "length"


@pytest.mark.parametrize(
    ("tool_choice", "finish_reason"),
    [("GetWeather", "stop"), ("any", "tool_calls"), ("required", "tool_calls")],
)
def test_bind_tools_makes_valid_tool_calls(api: Api, tool_choice: str, finish_reason: str) -> None:
    tools: dict[str, type[BaseModel]] = {"GetWeather": GetWeather, "GetTime": GetTime}
    messages = [
        chat(api, seed=seed)
        .bind_tools(list(tools.values()), tool_choice=tool_choice, parallel_tool_calls=False)
        .invoke("Weather?")
        for seed in SEEDS[:3]
    ]
    for message in messages:
        assert isinstance(message, AIMessage)
        assert message.tool_calls or message.invalid_tool_calls
    for message in ended(messages, cut_message):
        assert message.response_metadata["finish_reason"] == finish_reason
        assert not message.invalid_tool_calls
        assert len(message.tool_calls) == 1
        call = message.tool_calls[0]
        if tool_choice == "GetWeather":
            assert call["name"] == "GetWeather"
        schema = tools[call["name"]]
        schema.model_validate(call["args"])
        validate(call["args"], schema.model_json_schema())
        assert call["id"] and call["id"].startswith("chatcmpl-tool-")


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output_pydantic(
    api: Api, method: Literal["json_schema", "function_calling"]
) -> None:
    results = []
    for seed in SEEDS[:3]:
        model = chat(
            api, seed=seed, max_tokens=STRUCTURED_MAX_TOKENS if method == "json_schema" else 100
        )
        structured = model.with_structured_output(Person, method=method, include_raw=True)
        try:
            results.append(structured.invoke("Describe a person."))
        except openai.LengthFinishReasonError:  # the SDK's parse() refuses a cut answer
            continue
    done = ended(results, lambda r: cut_message(r["raw"]))
    for result in done:
        assert result["parsing_error"] is None, result
        assert isinstance(result["parsed"], Person)
        validate(result["parsed"].model_dump(), Person.model_json_schema())


def test_with_structured_output_function_calling_strict(api: Api) -> None:
    results = [
        chat(api, seed=seed)
        .with_structured_output(Person, method="function_calling", strict=True, include_raw=True)
        .invoke("Describe a person.")
        for seed in SEEDS[:3]
    ]
    for result in ended(results, lambda r: cut_message(r["raw"])):
        assert result["parsing_error"] is None, result
        assert isinstance(result["parsed"], Person)
        assert result["raw"].tool_calls[0]["name"] == "Person"


def test_with_structured_output_json_schema_dict(api: Api) -> None:
    schema = {
        "title": "Flags",
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "level": {"enum": ["low", "high"]}},
        "required": ["ok", "level"],
        "additionalProperties": False,
    }
    results = []
    for seed in SEEDS[:3]:
        structured = chat(api, seed=seed, max_tokens=STRUCTURED_MAX_TOKENS).with_structured_output(
            schema, method="json_schema", strict=True, include_raw=True
        )
        try:
            results.append(structured.invoke("Flags?"))
        except openai.LengthFinishReasonError:
            continue
    for result in ended(results, lambda r: cut_message(r["raw"])):
        assert result["parsing_error"] is None, result
        validate(result["parsed"], schema)


def test_with_structured_output_json_mode(api: Api) -> None:
    # A dict schema: json_mode asks for any JSON object; a random model's keys are long, so
    # answers are drawn until some end (and each that ended must have parsed).
    parsed: list[Any] = []
    cut = 0
    for seed in range(8):
        structured = chat(
            api, seed=seed, temperature=1.0, max_tokens=STRUCTURED_MAX_TOKENS
        ).with_structured_output(
            {"title": "Anything", "type": "object"}, method="json_mode", include_raw=True
        )
        try:
            result = structured.invoke([HumanMessage("Answer in JSON.")])
        except openai.LengthFinishReasonError:
            cut += 1
            continue
        if cut_message(result["raw"]):
            cut += 1
            continue
        assert result["parsing_error"] is None, result
        parsed.append(result["parsed"])
    assert parsed, f"all {cut} answers hit max_tokens"
    for value in parsed:
        assert isinstance(value, dict)


def check_logprobs(content: list[dict[str, Any]], top: int) -> None:
    assert content
    for entry in content:
        assert isinstance(entry["token"], str)
        assert entry["logprob"] <= 0
        assert entry["bytes"] == list(entry["token"].encode("utf-8"))
        assert len(entry["top_logprobs"]) == top
        for alt in entry["top_logprobs"]:
            assert alt["logprob"] <= 0 and isinstance(alt["token"], str)


def test_logprobs_in_response_metadata(api: Api) -> None:
    message = chat(api, max_tokens=6).bind(logprobs=True, top_logprobs=2).invoke("Hello")
    logprobs = message.response_metadata["logprobs"]
    check_logprobs(logprobs["content"], top=2)
    usage = message.usage_metadata
    assert usage is not None and usage["output_tokens"] == len(logprobs["content"])


def test_streamed_logprobs(api: Api) -> None:
    model = chat(api, max_tokens=6, stream_usage=True).bind(logprobs=True, top_logprobs=1)
    total: AIMessageChunk | None = None
    for chunk in model.stream("Hello"):
        assert isinstance(chunk, AIMessageChunk)
        total = chunk if total is None else total + chunk
    assert total is not None
    content = total.response_metadata["logprobs"]["content"]
    check_logprobs(content, top=1)
    assert total.usage_metadata is not None
    assert total.usage_metadata["output_tokens"] == len(content)


def test_n_gives_that_many_generations(api: Api) -> None:
    result = chat(api, n=2, max_tokens=6).generate([[HumanMessage("Hello")], [HumanMessage("Hi")]])
    assert len(result.generations) == 2
    for generations in result.generations:
        assert len(generations) == 2
        for generation in generations:
            assert isinstance(generation, ChatGeneration)
            assert isinstance(generation.message, AIMessage)
            assert isinstance(generation.message.content, str)
            assert generation.generation_info is not None
            assert generation.generation_info["finish_reason"] in {"stop", "length"}


def test_tool_result_round_trip(api: Api) -> None:
    """A tool call, its result, and the next turn: the roles LangChain sends back."""
    model = chat(api, seed=1).bind_tools([GetWeather], tool_choice="GetWeather")
    first = model.invoke("Weather?")
    assert first.tool_calls
    call = first.tool_calls[0]
    follow = (
        chat(api, max_tokens=8)
        .bind_tools([GetWeather])
        .invoke(
            [
                HumanMessage("Weather?"),
                first,
                ToolMessage(content='{"forecast": "sun"}', tool_call_id=call["id"]),
            ]
        )
    )
    assert isinstance(follow, AIMessage)
    assert follow.response_metadata["finish_reason"] in {"stop", "length", "tool_calls"}
