"""llama-index's OpenAILike against `appliance serve`: chat, structured prediction, tool
calling and logprobs.

The tiny model's text is random: only behaviour is asserted. A constrained answer may be
cut by max_tokens (a prefix then, as in vLLM): the structured tests leave it room.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pytest
from llama_index.core.llms import ChatMessage, ChatResponse
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel, Field

from tests import timing
from tests.clients.conftest import Api, validate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEEDS = (0, 1, 2, 3)


class Person(BaseModel):
    """A person"""

    name: str = Field(pattern=r"^[a-z]{1,8}$")
    age: int = Field(ge=0, le=120)
    member: bool


class WeatherArgs(BaseModel):
    city: Literal["Paris", "Oslo", "Lima"]
    days: int = Field(ge=1, le=7)


def get_weather(city: str, days: int) -> str:
    """Weather"""
    return f"sun in {city} for {days} days"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One HTTP client for every OpenAILike here, closed at the end (none is left open)."""
    with httpx.Client(timeout=timing.scaled(120)) as client:
        yield client


def make_llm(http: httpx.Client, api: Api, **kwargs: Any) -> OpenAILike:
    settings: dict[str, Any] = {"max_tokens": 100, **kwargs}
    return OpenAILike(
        http_client=http,
        model=api.model,
        api_base=api.base_url,
        api_key=api.api_key,
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=512,  # the tiny model's
        max_retries=0,
        timeout=timing.scaled(120),
        **settings,
    )


def finish_reason(response: ChatResponse) -> str | None:
    return response.raw.choices[0].finish_reason  # type: ignore[union-attr]


def test_chat(http: httpx.Client, api: Api) -> None:
    response = make_llm(http, api, max_tokens=8).chat([ChatMessage(role="user", content="Hello")])
    assert isinstance(response.message.content, str)
    assert response.message.role == "assistant"
    assert finish_reason(response) in {"stop", "length"}


def test_stream_chat(http: httpx.Client, api: Api) -> None:
    chunks = list(
        make_llm(http, api, max_tokens=6).stream_chat([ChatMessage(role="user", content="Hi")])
    )
    assert chunks
    assert chunks[-1].message.content == "".join(c.delta or "" for c in chunks)


def test_completion(http: httpx.Client, api: Api) -> None:
    response = make_llm(http, api, max_tokens=6).complete("Hello")
    assert isinstance(response.text, str)


# Room for a constrained answer after the prompt (the context is 512 tokens): the tiny
# model's tokens are short, and a small object or tool call takes 60 to 120 of them.
STRUCTURED_MAX_TOKENS = 160


def test_structured_predict(http: httpx.Client, api: Api) -> None:
    for seed in SEEDS[:2]:
        llm = make_llm(
            http, api, max_tokens=STRUCTURED_MAX_TOKENS, additional_kwargs={"seed": seed}
        )
        person = llm.structured_predict(Person, PromptTemplate("Describe {who}."), who="a person")
        assert isinstance(person, Person)
        validate(person.model_dump(), Person.model_json_schema())


def test_as_structured_llm(http: httpx.Client, api: Api) -> None:
    for seed in SEEDS[:2]:
        llm = make_llm(
            http, api, max_tokens=STRUCTURED_MAX_TOKENS, additional_kwargs={"seed": seed}
        ).as_structured_llm(Person)
        response = llm.chat([ChatMessage(role="user", content="Describe a person.")])
        assert isinstance(response.raw, Person)
        assert Person.model_validate_json(response.message.content or "") == response.raw


def test_chat_with_tools_required(http: httpx.Client, api: Api) -> None:
    # One tool, briefly described: the tiny model's context is 512 tokens, and a chat
    # template with llama-index's tool schemas takes most of it.
    weather = FunctionTool.from_defaults(
        fn=get_weather, name="get_weather", description="Weather", fn_schema=WeatherArgs
    )
    ended = 0
    for seed in SEEDS:
        llm = make_llm(
            http, api, max_tokens=STRUCTURED_MAX_TOKENS, additional_kwargs={"seed": seed}
        )
        response = llm.chat_with_tools(
            [weather], user_msg="Weather?", tool_required=True, allow_parallel_tool_calls=False
        )
        calls = response.message.additional_kwargs["tool_calls"]
        assert len(calls) == 1 and calls[0].function.name == "get_weather"
        assert calls[0].id.startswith("chatcmpl-tool-")
        if finish_reason(response) == "length":
            continue  # the arguments are cut short
        ended += 1
        assert finish_reason(response) == "tool_calls"
        (selection,) = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
        assert selection.tool_id == calls[0].id and selection.tool_name == "get_weather"
        validate(selection.tool_kwargs, weather.metadata.get_parameters_dict())
        WeatherArgs.model_validate(selection.tool_kwargs)
        output = weather.call(**selection.tool_kwargs)
        assert not output.is_error
    assert ended, "every answer hit max_tokens"


def test_predict_and_call(http: httpx.Client, api: Api) -> None:
    weather = FunctionTool.from_defaults(fn=get_weather, fn_schema=WeatherArgs)
    llm = make_llm(http, api, max_tokens=STRUCTURED_MAX_TOKENS, additional_kwargs={"seed": 2})
    response = llm.predict_and_call(
        [weather], user_msg="Weather?", error_on_no_tool_call=True, tool_required=True
    )
    (source,) = response.sources
    assert source.tool_name == "get_weather"
    assert not source.is_error
    WeatherArgs.model_validate(source.raw_input["kwargs"])
    assert response.response.startswith("sun in ")


def test_logprobs(http: httpx.Client, api: Api) -> None:
    response = make_llm(http, api, max_tokens=5, logprobs=True, top_logprobs=2).chat(
        [ChatMessage(role="user", content="Hello")]
    )
    assert response.logprobs
    usage = response.raw.usage
    assert len(response.logprobs) == usage.completion_tokens
    for alternatives in response.logprobs:
        assert len(alternatives) == 2
        for alt in alternatives:
            assert alt.logprob <= 0
            assert alt.bytes == list(alt.token.encode("utf-8"))
