"""Structured outputs on the built-in engine, as vLLM answers them (its xgrammar backend).

Driven by the official OpenAI SDK over a real socket, with the engine key, whole and
streamed: ``response_format`` json_schema (strict) and json_object, vLLM's ``guided_json``,
``guided_regex``, ``guided_choice``, ``guided_grammar`` and ``structured_outputs``, on chat and
completions. The tiny model's text is nonsense, but it parses and validates against the
schema (``jsonschema``): the grammar allows nothing else. Strings, numbers and arrays of the
schemas are bounded (``maxLength``, ``minimum``/``maximum``, ``maxItems``) so that a
random-weight model, which would otherwise write one string forever, finishes within
``max_tokens``; json_object (nothing to bound) is steered to finish with ``logit_bias``.
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
KEY = "engine-key-for-the-structured-output-tests"
MESSAGES = [{"role": "user", "content": "Describe the appliance as JSON."}]
PROMPT = "The appliance keeps the audit log"
MAX_TOKENS = 400

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "member": {"type": "boolean"},
    },
    "required": ["name", "age", "member"],
    "additionalProperties": False,
}
ORDER = {  # nested objects, an array of objects, an enum, a pattern, required fields
    "type": "object",
    "properties": {
        "order": {
            "type": "object",
            "properties": {
                "id": {"type": "integer", "minimum": 1, "maximum": 9999},
                "status": {"enum": ["open", "shipped", "closed"]},
                "lines": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 2,
                    "items": {
                        "type": "object",
                        "properties": {
                            "sku": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{3}$"},
                            "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                        },
                        "required": ["sku", "qty"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["id", "status", "lines"],
            "additionalProperties": False,
        }
    },
    "required": ["order"],
    "additionalProperties": False,
}
TAGS = {  # an array of enums at the top, optional members, numbers with bounds
    "type": "object",
    "properties": {
        "colors": {
            "type": "array",
            "items": {"enum": ["red", "green", "blue"]},
            "minItems": 1,
            "maxItems": 3,
        },
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "note": {"type": ["string", "null"], "maxLength": 5},
    },
    "required": ["colors"],
    "additionalProperties": False,
}
SCHEMAS = {"person": PERSON, "order": ORDER, "tags": TAGS}


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[LiveServer]:
    live = LiveServer(create_app(tiny_model, MODEL, keys=EngineKeys(fixed=KEY)))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


def one_token(server: LiveServer, text: str) -> int:
    response = httpx.post(
        f"{server.url}/tokenize",
        json={"model": MODEL, "prompt": text},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    ids = response.json()["tokens"]
    assert len(ids) == 1, f"{text!r} is {ids} in the tiny tokenizer"
    return int(ids[0])


def chat(client: openai.OpenAI, **params: Any) -> list[tuple[str, str | None]]:
    """(content, finish_reason) of each choice of a whole chat completion."""
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, **params)  # type: ignore[call-overload]
    return [(c.message.content or "", c.finish_reason) for c in reply.choices]


def chat_streamed(client: openai.OpenAI, **params: Any) -> list[tuple[str, str | None]]:
    """The same, streamed: the deltas joined per choice, and the finish reason sent."""
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **params)  # type: ignore[call-overload]
    texts: dict[int, str] = {}
    reasons: dict[int, str | None] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason is not None:
                reasons[choice.index] = choice.finish_reason
    return [(texts[i], reasons.get(i)) for i in sorted(texts)]


def both(client: openai.OpenAI, **params: Any) -> list[tuple[str, str | None]]:
    """Whole and streamed answers (the same seed gives the same text)."""
    whole, streamed = chat(client, **params), chat_streamed(client, **params)
    assert whole == streamed
    return whole


def json_schema_format(schema: dict[str, Any], name: str = "answer") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


# ------------------------------------------------------------------ response_format


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_json_schema_output_parses_and_validates(client: openai.OpenAI, name: str) -> None:
    schema = SCHEMAS[name]
    answers = both(
        client, response_format=json_schema_format(schema, name), max_tokens=MAX_TOKENS, seed=7, n=2
    )
    for text, reason in answers:
        assert reason == "stop", text
        jsonschema.validate(json.loads(text), schema)


def test_json_schema_greedy_and_sampled_and_text_is_no_format(client: openai.OpenAI) -> None:
    for params in ({"temperature": 0}, {"seed": 1}, {"seed": 2}, {"seed": 3, "temperature": 1.5}):
        [(text, reason)] = chat(
            client, response_format=json_schema_format(ORDER), max_tokens=MAX_TOKENS, **params
        )
        assert reason == "stop"
        jsonschema.validate(json.loads(text), ORDER)
    plain = chat(client, max_tokens=8, seed=4)  # and "text" is no format
    assert chat(client, max_tokens=8, seed=4, response_format={"type": "text"}) == plain


def test_json_object_parses_as_an_object(server: LiveServer, client: openai.OpenAI) -> None:
    # Nothing bounds an object's strings: steer the random model to close them.
    bias = {str(one_token(server, '"')): 5, str(one_token(server, "}")): 5}
    answers = both(
        client,
        response_format={"type": "json_object"},
        max_tokens=MAX_TOKENS,
        seed=3,
        n=3,
        logit_bias=bias,
    )
    for text, reason in answers:
        assert reason == "stop"
        assert isinstance(json.loads(text), dict)


def test_too_few_tokens_end_with_length_and_a_prefix(client: openai.OpenAI) -> None:
    fmt = json_schema_format(ORDER)
    [(full, reason)] = chat(client, response_format=fmt, max_tokens=MAX_TOKENS, temperature=0)
    assert reason == "stop"
    for streamed in (False, True):
        ask = chat_streamed if streamed else chat
        [(cut, cut_reason)] = ask(client, response_format=fmt, max_tokens=12, temperature=0)
        assert cut_reason == "length"
        assert full.startswith(cut) and cut != full
        with pytest.raises(ValueError):
            json.loads(cut)


def test_logprobs_are_those_of_the_constrained_distribution(client: openai.OpenAI) -> None:
    choices = ["yes", "no"]
    reply = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=5,
        extra_body={"guided_choice": choices},
    )
    content = reply.choices[0].message.content
    assert content in choices
    lp = reply.choices[0].logprobs
    assert lp is not None and lp.content is not None
    first = lp.content[0]
    allowed = [alt for alt in first.top_logprobs if alt.logprob > -9999]
    assert allowed, "the chosen token at least"
    assert all(any(c.startswith(alt.token) for c in choices) for alt in allowed)
    assert sum(2.718281828**alt.logprob for alt in allowed) == pytest.approx(1.0, abs=1e-3)


def test_the_grammar_decides_where_the_answer_ends(
    server: LiveServer, client: openai.OpenAI
) -> None:
    # ignore_eos and min_tokens cannot make an answer go on past a complete grammar
    for extra in ({"ignore_eos": True}, {"min_tokens": 10}):
        [(text, reason)] = both(
            client, max_tokens=30, seed=3, extra_body={"guided_regex": "[0-9]{2}", **extra}
        )
        assert reason == "stop" and re.fullmatch("[0-9]{2}", text)
    # but where the grammar may go on (auto tool choice: free text), ignore_eos does
    tools = [{"type": "function", "function": {"name": "ping"}}]
    eos = {str(one_token(server, t)): 10 for t in ("</s>", "<|end|>")}
    [(text, reason)] = chat(client, max_tokens=30, seed=3, tools=tools, logit_bias=eos)
    assert (text, reason) == ("", "stop")
    [(text, reason)] = chat(
        client, max_tokens=30, seed=3, tools=tools, logit_bias=eos, extra_body={"ignore_eos": True}
    )
    assert reason == "length" and text


# ------------------------------------------------------------------ vLLM's guided_* fields


def test_guided_json_is_a_schema_too(client: openai.OpenAI) -> None:
    for schema in (PERSON, json.dumps(PERSON)):  # an object or its JSON text, as vLLM takes
        [(text, reason)] = both(
            client, max_tokens=MAX_TOKENS, seed=5, extra_body={"guided_json": schema}
        )
        assert reason == "stop"
        jsonschema.validate(json.loads(text), PERSON)


@pytest.mark.parametrize(
    "pattern", [r"[a-z]{3}-\d{2}", r"(ALPHA|BETA)-[0-9]{4}", r"\d{4}-\d{2}-\d{2}"]
)
def test_guided_regex_fullmatches(client: openai.OpenAI, pattern: str) -> None:
    for text, reason in both(
        client, max_tokens=40, seed=6, n=3, extra_body={"guided_regex": pattern}
    ):
        assert reason == "stop"
        assert re.fullmatch(pattern, text), text


def test_guided_choice_is_one_of_the_choices(client: openai.OpenAI) -> None:
    choices = ["positive", "negative", 'a "quoted" one', "多行\n文本"]
    seen = set()
    for seed in range(4):
        for text, reason in both(
            client, max_tokens=40, seed=seed, n=2, extra_body={"guided_choice": choices}
        ):
            assert reason == "stop"
            assert text in choices
            seen.add(text)
    assert len(seen) > 1, "the choice is the model's, not always the first"


def test_guided_grammar_ebnf_and_lark(client: openai.OpenAI) -> None:
    ebnf = 'root ::= "id-" [0-9] [0-9]? " " ("ok" | "fail")'
    lark = 'start: "id-" DIGIT DIGIT? " " ("ok" | "fail")\nDIGIT: /[0-9]/'
    for grammar in (ebnf, lark):
        for text, reason in both(
            client, max_tokens=40, seed=8, n=2, extra_body={"guided_grammar": grammar}
        ):
            assert reason == "stop"
            assert re.fullmatch(r"id-[0-9]{1,2} (ok|fail)", text), text


def test_structured_outputs_field(client: openai.OpenAI) -> None:
    [(text, _)] = both(
        client, max_tokens=MAX_TOKENS, seed=9, extra_body={"structured_outputs": {"json": TAGS}}
    )
    jsonschema.validate(json.loads(text), TAGS)
    [(text, _)] = chat(
        client, max_tokens=40, seed=9, extra_body={"structured_outputs": {"regex": "[0-9]{3}"}}
    )
    assert re.fullmatch("[0-9]{3}", text)
    [(text, _)] = chat(
        client, max_tokens=40, seed=9, extra_body={"structured_outputs": {"choice": ["x", "y"]}}
    )
    assert text in ("x", "y")
    compact = {"json": PERSON, "disable_any_whitespace": True}
    [(text, reason)] = chat(
        client, max_tokens=MAX_TOKENS, seed=9, extra_body={"structured_outputs": compact}
    )
    assert reason == "stop"
    jsonschema.validate(json.loads(text), PERSON)
    assert not re.search(r"[\n\r\t]|  ", text), "no whitespace but the separators'"


def test_completions_take_the_same_formats(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL,
        prompt=PROMPT,
        max_tokens=MAX_TOKENS,
        seed=10,
        n=2,
        extra_body={"response_format": json_schema_format(PERSON)},
    )
    for choice in reply.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.text), PERSON)
    stream = client.completions.create(
        model=MODEL,
        prompt=PROMPT,
        max_tokens=40,
        seed=10,
        stream=True,
        extra_body={"guided_regex": r"[A-Z]{2}[0-9]{3}"},
    )
    text = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
    assert re.fullmatch(r"[A-Z]{2}[0-9]{3}", text)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"guided_regex": "[a-z"}, "guided_regex", "Invalid regular expression"),
        ({"guided_json": "{not json"}, "guided_json", "not valid JSON"),
        ({"guided_json": {"type": "nope"}}, "guided_json", "Invalid JSON schema"),
        ({"guided_grammar": "root ::= missing"}, "guided_grammar", "Invalid grammar"),
        ({"guided_regex": "a", "guided_choice": ["a"]}, "guided_choice", "one kind"),
        (
            {"response_format": {"type": "json_object"}, "guided_json": PERSON},
            "guided_json",
            "one kind",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "Missing"),
        ({"guided_decoding_backend": "outlines"}, "guided_decoding_backend", "not supported"),
        ({"guided_whitespace_pattern": " "}, "guided_whitespace_pattern", "not supported"),
    ],
)
def test_bad_structured_outputs_are_400_naming_the_field(
    server: LiveServer, extra: dict[str, Any], param: str, words: str
) -> None:
    for path, base in (
        ("chat/completions", {"messages": MESSAGES}),
        ("completions", {"prompt": PROMPT}),
    ):
        response = httpx.post(
            f"{server.url}/v1/{path}",
            json={"model": MODEL, "max_tokens": 4, **base, **extra},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param
        assert words in error["message"]


def test_xgrammar_backend_names_are_accepted(client: openai.OpenAI) -> None:
    for backend in ("xgrammar", "auto", "xgrammar:disable-any-whitespace"):
        [(text, _)] = chat(
            client,
            max_tokens=20,
            seed=1,
            extra_body={"guided_regex": "[0-9]{2}", "guided_decoding_backend": backend},
        )
        assert re.fullmatch("[0-9]{2}", text)
