"""Tool calling on the built-in engine, as vLLM answers it with the Hermes tool parser.

Driven by the official OpenAI SDK over a real socket, with the engine key, whole and
streamed: the tools rendered by the chat template, ``tool_choice`` "required", named, "auto"
and "none", ``parallel_tool_calls``, the finish reasons (``tool_calls``; ``stop`` for a named
choice, as OpenAI), ``chatcmpl-tool-`` ids, and arguments that are JSON valid for the tool's
``parameters`` (``jsonschema``), though the tiny model's values are nonsense. The parameters'
strings and numbers are bounded so that the random-weight model finishes within the context.
The model never writes ``<tool_call>`` of itself, so "auto" calls are made with a request's
own ``guided_regex`` (vLLM reads calls out of such text too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from appliance.engine.server import create_app
from appliance.vault.engine_key import EngineKeys
from tests.conftest import LiveServer

pytestmark = pytest.mark.engine

MODEL = "tiny"
KEY = "engine-key-for-the-tool-calling-tests"
CONTEXT = 512  # the tiny model's
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 6},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": WEATHER_PARAMETERS}}
PING = {"type": "function", "function": {"name": "ping"}}  # no parameters: {} is its arguments
TOOLS = [WEATHER, PING]
SCHEMAS = {"weather": WEATHER_PARAMETERS, "ping": {"type": "object", "maxProperties": 0}}
NAMED = {"type": "function", "function": {"name": "weather"}}
HERMES_CALL = (  # what a Hermes model writes, forced with the request's own regex
    r'<tool_call>\n\{"name": "weather", "arguments": \{"city": "[a-z]{2,5}", '
    r'"days": [1-7]\}\}\n</tool_call>'
)


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[LiveServer]:
    live = LiveServer(create_app(tiny_model, MODEL, keys=EngineKeys(fixed=KEY)))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


def post(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"})


def prompt_tokens(server: LiveServer, tools: list[dict[str, Any]] | None = TOOLS) -> int:
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
    if tools is not None:
        body["tools"] = tools
    response = post(server, "/tokenize", body)
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


def room(server: LiveServer, tools: list[dict[str, Any]] = TOOLS) -> int:
    """max_tokens that fills the context (the prompt has the tools in it)."""
    return CONTEXT - prompt_tokens(server, tools)


def whole(client: openai.OpenAI, **params: Any) -> list[dict[str, Any]]:
    """Each choice as {content, calls: [(id, name, arguments)], finish}."""
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, **params)  # type: ignore[call-overload]
    out = []
    for choice in reply.choices:
        calls = [
            (call.id, call.function.name, call.function.arguments, call.type)
            for call in choice.message.tool_calls or []
        ]
        assert all(kind == "function" for *_, kind in calls)
        out.append(
            {
                "content": choice.message.content,
                "calls": [c[:3] for c in calls],
                "finish": choice.finish_reason,
            }
        )
    return out


def streamed(client: openai.OpenAI, **params: Any) -> list[dict[str, Any]]:
    """The same, streamed, with vLLM's (and OpenAI's) framing checked: a call's first delta
    has its index, id, type and name; the following ones only argument fragments."""
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **params)  # type: ignore[call-overload]
    content: dict[int, str] = {}
    calls: dict[int, dict[int, dict[str, str]]] = {}
    finish: dict[int, str | None] = {}
    for chunk in stream:
        for choice in chunk.choices:
            i = choice.index
            content[i] = content.get(i, "") + (choice.delta.content or "")
            for delta in choice.delta.tool_calls or []:
                mine = calls.setdefault(i, {})
                fn = delta.function
                if delta.index not in mine:
                    assert delta.id and delta.id.startswith("chatcmpl-tool-")
                    assert delta.type == "function" and fn is not None and fn.name
                    mine[delta.index] = {"id": delta.id, "name": fn.name, "arguments": ""}
                    assert list(mine) == list(range(len(mine))), "indexes in order"
                else:
                    assert delta.id is None and (fn is None or fn.name is None)
                mine[delta.index]["arguments"] += (fn.arguments if fn else None) or ""
            if choice.finish_reason is not None:
                finish[i] = choice.finish_reason
    out = []
    for i in sorted(content):
        made = [calls.get(i, {})[k] for k in sorted(calls.get(i, {}))]
        out.append(
            {
                "content": content[i],
                "calls": [(c["id"], c["name"], c["arguments"]) for c in made],
                "finish": finish.get(i),
            }
        )
    return out


def both(client: openai.OpenAI, **params: Any) -> list[dict[str, Any]]:
    """Whole and streamed answers agree (ids apart); the whole ones are returned."""
    answers, chunks = whole(client, **params), streamed(client, **params)
    assert len(answers) == len(chunks)
    for answer, chunked in zip(answers, chunks, strict=True):
        assert [c[1:] for c in answer["calls"]] == [c[1:] for c in chunked["calls"]]
        assert (answer["content"] or "") == chunked["content"]
        assert answer["finish"] == chunked["finish"]
    return answers


def check_calls(calls: list[tuple[str, str, str]]) -> None:
    for call_id, name, arguments in calls:
        assert re.fullmatch(r"chatcmpl-tool-[0-9a-f]{32}", call_id)
        jsonschema.validate(json.loads(arguments), SCHEMAS[name])
    assert len({c[0] for c in calls}) == len(calls), "ids are unique"


# ------------------------------------------------------------------ the template


def test_tools_are_rendered_by_the_chat_template(server: LiveServer, client: openai.OpenAI) -> None:
    bare, with_tools = prompt_tokens(server, None), prompt_tokens(server, TOOLS)
    assert with_tools > bare + 40  # both definitions are in the prompt
    assert prompt_tokens(server, [WEATHER]) < with_tools
    for choice in ("none", "auto", "required"):  # "none" renders them too, as vLLM does
        reply = client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice=choice,  # type: ignore[arg-type]
            max_tokens=1,
        )
        assert reply.usage is not None and reply.usage.prompt_tokens == with_tools


def test_a_conversation_with_calls_and_results(server: LiveServer, client: openai.OpenAI) -> None:
    call = {
        "id": "chatcmpl-tool-1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Paris", "days": 2}'},
    }
    turns = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "chatcmpl-tool-1", "content": "Sunny, 24 C"},
    ]
    reply = client.chat.completions.create(
        model=MODEL,
        messages=turns,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        max_tokens=4,
        seed=1,
    )
    assert reply.usage is not None
    # the call is written in the prompt (its name and arguments), then the tool's answer
    assert reply.usage.prompt_tokens > prompt_tokens(server) + 30
    bad = {**call, "function": {"name": "weather", "arguments": "{city: Paris"}}
    response = post(
        server,
        "/v1/chat/completions",
        {"model": MODEL, "messages": [*MESSAGES, {"role": "assistant", "tool_calls": [bad]}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[1].tool_calls[0].function.arguments"


# ------------------------------------------------------------------ required and named


def test_required_calls_tools_with_valid_arguments(
    server: LiveServer, client: openai.OpenAI
) -> None:
    answers = both(
        client, tools=TOOLS, tool_choice="required", max_tokens=room(server), seed=9, n=3
    )
    names = set()
    for answer in answers:
        assert answer["finish"] == "tool_calls"
        assert answer["calls"] and not answer["content"]
        check_calls(answer["calls"])
        names |= {name for _, name, _ in answer["calls"]}
    assert names == {"weather", "ping"}, "the model picks the tools (seeds 9, 10, 11)"


def test_named_choice_calls_that_function_once(server: LiveServer, client: openai.OpenAI) -> None:
    for seed in (1, 2):
        answers = both(
            client, tools=TOOLS, tool_choice=NAMED, max_tokens=room(server), seed=seed, n=2
        )
        for answer in answers:
            assert answer["finish"] == "stop"  # OpenAI's (and vLLM's) for a named choice
            assert [name for _, name, _ in answer["calls"]] == ["weather"]
            assert not answer["content"]
            check_calls(answer["calls"])


def test_parallel_tool_calls_false_is_at_most_one(
    server: LiveServer, client: openai.OpenAI
) -> None:
    many = whole(client, tools=TOOLS, tool_choice="required", max_tokens=room(server), seed=9)
    assert len(many[0]["calls"]) > 1, "seed 9 makes parallel calls"
    for params in (
        {"tool_choice": "required", "seed": 9, "n": 3},
        {"seed": 1, "extra_body": {"guided_regex": f"{HERMES_CALL}\n{HERMES_CALL}"}},  # auto
    ):
        for answer in both(
            client, tools=TOOLS, parallel_tool_calls=False, max_tokens=room(server), **params
        ):
            assert len(answer["calls"]) == 1
            assert answer["finish"] == "tool_calls"
            check_calls(answer["calls"])


def test_calls_cut_by_max_tokens_end_with_length(client: openai.OpenAI) -> None:
    for choice in ("required", NAMED):
        for answer in both(client, tools=TOOLS, tool_choice=choice, max_tokens=20, seed=1):
            assert answer["finish"] == "length"


# ------------------------------------------------------------------ auto and none


def test_auto_without_a_call_is_content(server: LiveServer, client: openai.OpenAI) -> None:
    for params in ({}, {"tool_choice": "auto"}):  # auto is the default with tools
        for answer in both(client, tools=TOOLS, max_tokens=30, seed=5, **params):
            assert answer["calls"] == [] and answer["content"]
            assert answer["finish"] in ("stop", "length")


def test_auto_reads_hermes_calls_from_the_text(server: LiveServer, client: openai.OpenAI) -> None:
    cases = [
        (HERMES_CALL, None),
        (rf"Let me check\. {HERMES_CALL}", "Let me check."),
        (f"{HERMES_CALL}\n{HERMES_CALL}", None),  # parallel calls
        # the keys the other way round: read whole at </tool_call>
        (r'<tool_call>\{"arguments": \{"days": [1-7], "city": "[a-z]{3}"\}, '
         r'"name": "weather"\}</tool_call>', None),
    ]  # fmt: skip
    for regex, content in cases:
        [answer] = both(
            client, tools=TOOLS, max_tokens=room(server), seed=2, extra_body={"guided_regex": regex}
        )
        assert answer["finish"] == "tool_calls"
        assert answer["content"] == content
        assert [name for _, name, _ in answer["calls"]] == ["weather"] * regex.count("arguments")
        check_calls(answer["calls"])


def test_none_makes_no_calls(server: LiveServer, client: openai.OpenAI) -> None:
    [answer] = both(
        client,
        tools=TOOLS,
        tool_choice="none",
        max_tokens=room(server),
        seed=2,
        extra_body={"guided_regex": HERMES_CALL},
    )
    assert answer["calls"] == [] and answer["finish"] == "stop"
    assert re.fullmatch(HERMES_CALL, answer["content"])


def test_logprobs_of_every_token_arrive(server: LiveServer, client: openai.OpenAI) -> None:
    params: dict[str, Any] = {
        "tools": TOOLS,
        "tool_choice": "required",
        "max_tokens": room(server),
        "seed": 4,
        "logprobs": True,
    }
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, **params)  # type: ignore[call-overload]
    assert reply.usage is not None and reply.choices[0].logprobs is not None
    assert len(reply.choices[0].logprobs.content or []) == reply.usage.completion_tokens
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        **params,
    )
    entries, usage = 0, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            entries += len(choice.logprobs.content or []) if choice.logprobs else 0
    assert usage is not None and entries == usage.completion_tokens


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"tool_choice": "required"}, "tools", "`tools` must be set"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}},
         "tool_choice", "does not match any"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "Only named tools"),
        ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice", "Correct usage"),
        ({"tools": [], "tool_choice": "required"}, "tools", "at least one tool"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "x"}}}],
          "tool_choice": "required"}, "tools", "Invalid tool definitions"),
        ({"tools": TOOLS, "tool_choice": "required", "guided_json": {"type": "object"}},
         "guided_json", "not both"),
        ({"tools": TOOLS, "tool_choice": NAMED, "response_format": {"type": "json_object"}},
         "response_format", "not both"),
        ({"tools": TOOLS, "functions": [{"name": "f"}]}, "functions", "not supported"),
    ],
)  # fmt: skip
def test_bad_tool_requests_are_400(
    server: LiveServer, body: dict[str, Any], param: str, words: str
) -> None:
    response = post(
        server,
        "/v1/chat/completions",
        {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, **body},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]


# ------------------------------------------------------------------ the parser itself

CALL_TEXT = (
    'Sure <tool_call>\n{"name": "weather", "arguments": {  "city" :"a\\"}\\n</tool_call>",\n'
    '"days":\t3 }}\n</tool_call>\n<tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>'
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_parser_gives_the_same_answer_however_the_text_is_cut(size: int) -> None:
    from appliance.engine.tools import ToolCallParser, finish_reason

    parser = ToolCallParser("auto")
    deltas = []
    for start in range(0, len(CALL_TEXT), size):
        deltas += parser.feed(CALL_TEXT[start : start + size])
    deltas += parser.finish()
    assert parser.content == "Sure"
    assert [(c.name, json.loads(c.arguments)) for c in parser.calls] == [
        ("weather", {"city": 'a"}\n</tool_call>', "days": 3}),
        ("ping", {}),
    ]
    assert parser.calls[0].arguments == '{"city": "a\\"}\\n</tool_call>", "days": 3}'
    assert "".join(d.get("content", "") for d in deltas) == "Sure"
    fragments = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert "".join(f["function"]["arguments"] for f in fragments if f["index"] == 0) == (
        parser.calls[0].arguments
    )
    assert finish_reason("auto", "stop", parser) == "tool_calls"
    assert finish_reason("named", "stop", parser) == "stop"
    assert finish_reason("auto", "length", parser) == "length"


def test_parser_leaves_text_that_is_no_call_as_content() -> None:
    from appliance.engine.tools import ToolCallParser, finish_reason

    for text in ("a < b and <tool", "<tool_call> not json </tool_call> x", "<tool_call>\n{"):
        parser = ToolCallParser("auto")
        parts = [d["content"] for d in parser.feed(text) + parser.finish()]
        assert "".join(parts) == text == parser.content
        assert parser.calls == [] and finish_reason("auto", "stop", parser) == "stop"
