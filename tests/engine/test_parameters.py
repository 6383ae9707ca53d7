"""The built-in engine on the parameters a business app sends, as vLLM answers them.

Driven by the official OpenAI SDK over a real socket, with the engine key, whole and
streamed: ``n`` and ``best_of``, logprobs (chat and completions), ``echo``,
``logit_bias``, ``stop``, the penalties, ``min_tokens``, ``seed``, prompt lists and
token-id prompts, the developer and tool roles, and the clear 400s for what the engine
does not do (non-text content, legacy ``functions``, ``suffix``...). Structured outputs and
tools have their own tests (test_structured, test_tools).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from appliance.engine.server import create_app
from appliance.vault.engine_key import EngineKeys
from tests.conftest import LiveServer

pytestmark = pytest.mark.engine

MODEL = "tiny"
KEY = "engine-key-for-the-parameter-tests"
MESSAGES = [{"role": "user", "content": "你好! Tell me about the appliance."}]
PROMPT = "The appliance keeps the audit log"


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[LiveServer]:
    live = LiveServer(create_app(tiny_model, MODEL, keys=EngineKeys(fixed=KEY)))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


def token_ids(server: LiveServer, text: str) -> list[int]:
    """The engine's own tokenization of ``text`` (its /tokenize, with the key)."""
    response = httpx.post(
        f"{server.url}/tokenize",
        json={"model": MODEL, "prompt": text},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 200, response.text
    return list(response.json()["tokens"])


def one_token(server: LiveServer, text: str) -> int:
    ids = token_ids(server, text)
    assert len(ids) == 1, f"{text!r} is {ids} in the tiny tokenizer"
    return ids[0]


def texts_by_index(chunks: list[Any], attr: str = "text") -> dict[int, str]:
    """Streamed choices joined per index (chat: ``attr`` "content" of the deltas)."""
    joined: dict[int, str] = defaultdict(str)
    for chunk in chunks:
        for choice in chunk.choices:
            part = choice.delta.content if attr == "content" else choice.text
            joined[choice.index] += part or ""
    return dict(joined)


def bad_request(call: Any) -> dict[str, Any]:
    """The OpenAI-style error body of a call that must be a 400."""
    with pytest.raises(openai.BadRequestError) as info:
        call()
    body = info.value.body
    assert isinstance(body, dict)
    return body


def stop_reason(choice: Any) -> Any:
    return (choice.model_extra or {}).get("stop_reason")


EOS_TEXTS = ("</s>", "<|end|>")  # the tiny model's two EOS tokens


def generated_ids(client: openai.OpenAI, prompt: list[int], **params: Any) -> list[int]:
    """The token ids of a greedy completion, read from its logprobs (vLLM's
    ``return_tokens_as_token_ids``)."""
    extra = params.pop("extra_body", {})
    reply = client.completions.create(
        model=MODEL,
        prompt=prompt,
        temperature=0,
        logprobs=0,
        extra_body={**extra, "return_tokens_as_token_ids": True},
        **params,
    )
    lp = reply.choices[0].logprobs
    assert lp is not None and lp.tokens is not None
    return [int(t.removeprefix("token_id:")) for t in lp.tokens]


# ------------------------------------------------------------------ n, seed, prompts


def test_chat_n_distinct_choices_with_indexes_and_summed_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        n=3,
        max_tokens=10,
        seed=11,
        logprobs=True,  # type: ignore[arg-type]
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    texts = [c.message.content for c in reply.choices]
    assert len(set(texts)) == 3, texts  # answer i draws with seed + i
    assert reply.usage is not None
    counted = sum(len(c.logprobs.content or []) for c in reply.choices if c.logprobs)
    assert reply.usage.completion_tokens == counted  # summed over the choices
    single = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)  # type: ignore[arg-type]
    assert single.usage is not None
    assert reply.usage.prompt_tokens == single.usage.prompt_tokens  # the prompt once


def test_chat_n_streamed_matches_whole(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "n": 2, "max_tokens": 12}
    whole = client.chat.completions.create(**kwargs, seed=5)
    chunks = list(
        client.chat.completions.create(
            **kwargs, seed=5, stream=True, stream_options={"include_usage": True}
        )
    )
    roles = [c.choices[0].index for c in chunks[:2]]
    assert roles == [0, 1] and all(c.choices[0].delta.role == "assistant" for c in chunks[:2])
    assert texts_by_index(chunks, "content") == {c.index: c.message.content for c in whole.choices}
    finals = {
        c.choices[0].index: c.choices[0].finish_reason
        for c in chunks
        if c.choices and c.choices[0].finish_reason
    }
    assert finals == {c.index: c.finish_reason for c in whole.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_seed_repeats_the_answers(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "prompt": PROMPT,
        "n": 2,
        "max_tokens": 12,
        "temperature": 0.9,
        "top_p": 0.95,
        "presence_penalty": 0.5,
        "extra_body": {"top_k": 50, "repetition_penalty": 1.1},
    }
    first = [c.text for c in client.completions.create(**kwargs, seed=123).choices]
    again = [c.text for c in client.completions.create(**kwargs, seed=123).choices]
    other = [c.text for c in client.completions.create(**kwargs, seed=124).choices]
    assert first == again
    assert first != other
    assert other[0] == first[1]  # answer i of seed s draws as answer 0 of seed s + i
    streamed = list(client.completions.create(**kwargs, seed=123, stream=True))
    assert texts_by_index(streamed) == dict(enumerate(first))


def test_prompt_lists_number_choices_per_prompt(client: openai.OpenAI, server: LiveServer) -> None:
    prompts = [PROMPT, "数据 stays on premises"]
    whole = client.completions.create(
        model=MODEL, prompt=prompts, n=2, max_tokens=6, seed=3, logprobs=0
    )
    assert [c.index for c in whole.choices] == [0, 1, 2, 3]
    assert whole.usage is not None
    assert whole.usage.prompt_tokens == sum(len(token_ids(server, p)) for p in prompts)
    counted = sum(len(c.logprobs.tokens or []) for c in whole.choices if c.logprobs)
    assert whole.usage.completion_tokens == counted
    alone = client.completions.create(model=MODEL, prompt=prompts[1], n=2, max_tokens=6, seed=3)
    assert [c.text for c in whole.choices[2:]] == [c.text for c in alone.choices]
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt=prompts,
            n=2,
            max_tokens=6,
            seed=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert texts_by_index(chunks) == {c.index: c.text for c in whole.choices}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_token_id_prompts(client: openai.OpenAI, server: LiveServer) -> None:
    ids = token_ids(server, PROMPT)
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "seed": 9}
    by_text = client.completions.create(prompt=PROMPT, **kwargs)
    by_ids = client.completions.create(prompt=ids, **kwargs)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage == by_text.usage
    lists = client.completions.create(prompt=[ids, ids[:3]], **kwargs)
    assert [c.index for c in lists.choices] == [0, 1]
    assert lists.choices[0].text == by_text.choices[0].text
    assert lists.usage is not None and lists.usage.prompt_tokens == len(ids) + 3
    body = bad_request(lambda: client.completions.create(prompt=[[1, 99999]], **kwargs))
    assert body["param"] == "prompt"


# ------------------------------------------------------------------ logprobs, echo


def test_chat_logprobs_whole_and_streamed(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 10,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 3,
    }
    whole = client.chat.completions.create(**kwargs)
    assert whole.choices[0].logprobs is not None
    content = whole.choices[0].logprobs.content or []
    assert whole.usage is not None and len(content) == whole.usage.completion_tokens > 0
    for entry in content:
        assert entry.logprob <= 0
        assert entry.bytes == list(entry.token.encode("utf-8", errors="replace"))
        tops = [t.logprob for t in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and tops[0] <= 0
        # greedy: the chosen token is the most likely one
        assert entry.token == entry.top_logprobs[0].token
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    streamed = [
        e
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content or []
    ]
    assert [e.model_dump() for e in streamed] == [e.model_dump() for e in content]
    plain = client.chat.completions.create(**{**kwargs, "top_logprobs": None})
    assert plain.choices[0].logprobs is not None
    assert all(e.top_logprobs == [] for e in plain.choices[0].logprobs.content or [])


def test_completion_logprobs_whole_and_streamed(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": 10,
        "temperature": 0,
        "logprobs": 2,
    }
    whole = client.completions.create(**kwargs)
    lp = whole.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert whole.usage is not None and len(lp.tokens) == whole.usage.completion_tokens
    offsets = [0]
    for token in lp.tokens[:-1]:
        offsets.append(offsets[-1] + len(token))
    assert lp.text_offset == offsets
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert logprob is not None and logprob <= 0
        values = list(top.values())
        assert values == sorted(values, reverse=True)
        # greedy: the chosen one is among the 2 best (two tokens may read the same: U+FFFD)
        assert token in top and 1 <= len(top) <= 2
    by_id = client.completions.create(**kwargs, extra_body={"return_tokens_as_token_ids": True})
    assert by_id.choices[0].logprobs is not None
    for token, top in zip(
        by_id.choices[0].logprobs.tokens or [],
        by_id.choices[0].logprobs.top_logprobs or [],
        strict=True,
    ):
        assert token.startswith("token_id:") and len(top) == 2 and token in top
        assert max(top.values()) == top[token]
    chunks = list(client.completions.create(**kwargs, stream=True))
    parts = [c.choices[0].logprobs for c in chunks if c.choices[0].logprobs]
    assert [t for p in parts for t in p.tokens or []] == lp.tokens
    assert [o for p in parts for o in p.text_offset or []] == lp.text_offset
    assert [v for p in parts for v in p.token_logprobs or []] == lp.token_logprobs
    sampled = client.completions.create(**{**kwargs, "temperature": 1.0, "seed": 4, "logprobs": 1})
    assert sampled.choices[0].logprobs is not None
    for token, top in zip(
        sampled.choices[0].logprobs.tokens or [],
        sampled.choices[0].logprobs.top_logprobs or [],
        strict=True,
    ):
        assert token in top and 1 <= len(top) <= 2  # the best one, and the chosen one


def test_echo_returns_the_prompt_with_its_logprobs(
    client: openai.OpenAI, server: LiveServer
) -> None:
    prompt_ids = token_ids(server, PROMPT)
    kwargs: dict[str, Any] = {"model": MODEL, "prompt": PROMPT, "max_tokens": 4, "seed": 2}
    plain = client.completions.create(**kwargs)
    echoed = client.completions.create(**kwargs, echo=True)
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text
    assert echoed.choices[0].logprobs is None
    assert echoed.usage == plain.usage
    with_lp = client.completions.create(**kwargs, echo=True, logprobs=1)
    lp = with_lp.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert with_lp.usage is not None
    assert len(lp.tokens) == len(prompt_ids) + with_lp.usage.completion_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(v is not None and v <= 0 for v in lp.token_logprobs[1:])
    assert "".join(lp.tokens[: len(prompt_ids)]) == PROMPT
    chunks = list(client.completions.create(**kwargs, echo=True, logprobs=1, stream=True))
    assert chunks[0].choices[0].text.startswith(PROMPT)
    assert texts_by_index(chunks) == {0: with_lp.choices[0].text}
    streamed = [
        t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens or []
    ]
    assert streamed == lp.tokens


def test_logprobs_limits(client: openai.OpenAI) -> None:
    body = bad_request(
        lambda: client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            logprobs=True,
            top_logprobs=21,  # type: ignore[arg-type]
        )
    )
    assert body["param"] == "top_logprobs" and "max allowed: 20" in body["message"]
    body = bad_request(
        lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, top_logprobs=2)  # type: ignore[arg-type]
    )
    assert body["param"] == "top_logprobs" and "`logprobs` must be set" in body["message"]
    body = bad_request(lambda: client.completions.create(model=MODEL, prompt="x", logprobs=21))
    assert body["param"] == "logprobs"


# ------------------------------------------------------------------ best_of


def test_best_of_returns_the_highest_cumulative_logprob(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "prompt": PROMPT, "max_tokens": 8, "seed": 31}
    every = client.completions.create(**kwargs, n=4, logprobs=0)
    scored = [
        (sum(v or 0.0 for v in (c.logprobs.token_logprobs or [])) if c.logprobs else 0.0, c.text)
        for c in every.choices
    ]
    ranked = [text for _, text in sorted(scored, key=lambda item: -item[0])]
    assert ranked[0] != every.choices[0].text or ranked[1] != every.choices[1].text
    best = client.completions.create(**kwargs, best_of=4, logprobs=0)
    assert [c.text for c in best.choices] == ranked[:1]
    assert best.choices[0].index == 0
    assert best.usage is not None and best.choices[0].logprobs is not None
    assert best.usage.completion_tokens == len(best.choices[0].logprobs.tokens or [])
    two = client.completions.create(**kwargs, best_of=4, n=2)
    assert [c.text for c in two.choices] == ranked[:2]
    assert [c.index for c in two.choices] == [0, 1]
    chat = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=8,
        seed=31,
        extra_body={"best_of": 3},
    )
    assert len(chat.choices) == 1


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"best_of": 3, "n": 1, "stream": True}, "cannot be streamed"),
        ({"best_of": 1, "n": 2}, "best_of must be greater than or equal to n"),
        ({"best_of": 2, "temperature": 0}, "greedy sampling"),
    ],
)
def test_best_of_refusals_name_the_field(
    client: openai.OpenAI, kwargs: dict[str, Any], needle: str
) -> None:
    body = bad_request(
        lambda: client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=4, **kwargs)
    )
    assert body["param"] == "best_of" and needle in body["message"]
    assert body["type"] == "invalid_request_error"


# ------------------------------------------------------------------ logit_bias, min_tokens


def test_logit_bias_forces_and_bans_tokens(client: openai.OpenAI, server: LiveServer) -> None:
    forced = one_token(server, " data")
    reply = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=8, seed=1, logit_bias={str(forced): 100}
    )
    assert reply.choices[0].text == " data" * 8
    clamped = client.chat.completions.create(  # a bias past 100 is clamped to 100, as vLLM does
        model=MODEL,
        messages=MESSAGES,
        max_tokens=5,
        seed=1,
        logit_bias={str(forced): 500},  # type: ignore[arg-type]
    )
    assert clamped.choices[0].message.content == " data" * 5
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=5,
            n=2,
            seed=1,
            logit_bias={str(forced): 100},
            stream=True,
        )
    )
    assert texts_by_index(chunks, "content") == {0: " data" * 5, 1: " data" * 5}
    ids = token_ids(server, PROMPT)
    first = generated_ids(client, ids, max_tokens=3)
    banned = generated_ids(client, ids, max_tokens=3, logit_bias={str(first[0]): -100})
    assert banned[0] != first[0]
    body = bad_request(
        lambda: client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=2, logit_bias={"99999": 5}
        )
    )
    assert body["param"] == "logit_bias" and "out-of-vocab" in body["message"]


def test_min_tokens_holds_back_eos(client: openai.OpenAI, server: LiveServer) -> None:
    eos = one_token(server, "</s>")
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": 12,
        "seed": 8,
        "logit_bias": {str(eos): 100},
    }
    at_once = client.completions.create(**kwargs)
    assert at_once.usage is not None and at_once.usage.completion_tokens == 0
    assert at_once.choices[0].finish_reason == "stop"
    held = client.completions.create(**kwargs, extra_body={"min_tokens": 5})
    assert held.usage is not None and held.usage.completion_tokens == 5
    assert held.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=12,
            logit_bias={str(eos): 100, str(one_token(server, "<|end|>")): 100},
            extra_body={"min_tokens": 3},
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    ignoring = client.completions.create(**kwargs, extra_body={"ignore_eos": True})
    assert ignoring.usage is not None and ignoring.usage.completion_tokens == 12
    body = bad_request(
        lambda: client.completions.create(
            **{**kwargs, "max_tokens": 4}, extra_body={"min_tokens": 5}
        )
    )
    assert body["param"] == "min_tokens"


def test_stop_strings_and_stop_token_ids(client: openai.OpenAI, server: LiveServer) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "prompt": PROMPT, "max_tokens": 30, "seed": 6, "n": 2}
    free = [c.text for c in client.completions.create(**kwargs).choices]
    stop = next(  # three characters well inside the second answer, seen there first
        w
        for i in range(6, len(free[1]) - 3)
        if "\ufffd" not in (w := free[1][i : i + 3]) and free[1].index(w) == i
    )
    stopped = client.completions.create(**kwargs, stop=[stop])
    second = stopped.choices[1]
    assert second.text == free[1][: free[1].index(stop)]
    assert second.finish_reason == "stop" and stop_reason(second) == stop
    kept = client.completions.create(
        **kwargs, stop=[stop], extra_body={"include_stop_str_in_output": True}
    )
    assert kept.choices[1].text == free[1][: free[1].index(stop) + len(stop)]
    chunks = list(client.completions.create(**kwargs, stop=[stop], stream=True))
    assert texts_by_index(chunks) == {c.index: c.text for c in stopped.choices}
    forced = one_token(server, " data")
    by_id = client.completions.create(
        **{**kwargs, "n": 1},
        logit_bias={str(forced): 100},
        extra_body={"stop_token_ids": [forced]},
    )
    assert by_id.choices[0].text == "" and by_id.choices[0].finish_reason == "stop"
    assert stop_reason(by_id.choices[0]) == forced


# ------------------------------------------------------------------ penalties, top_k


def _tiny(tiny_model: Path) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, local_files_only=True)
    return model.eval()


def _reference_penalties(
    tiny_model: Path, ids: list[int], steps: int, eos: list[int], presence: float, frequency: float
) -> list[int]:
    """vLLM's presence and frequency penalties written out (on generated tokens only),
    greedy, EOS never drawn."""
    model = _tiny(tiny_model)
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1].float()
            counts = torch.zeros_like(logits)
            for token in out:
                counts[token] += 1
            logits = logits - frequency * counts - presence * (counts > 0).float()
            logits[eos] = -torch.inf
            out.append(int(torch.argmax(logits)))
    return out


def _reference_repetition(
    tiny_model: Path, ids: list[int], steps: int, penalty: float
) -> list[int]:
    """transformers' own greedy generate with its repetition penalty (vLLM's is HF's)."""
    model = _tiny(tiny_model)
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]),
            do_sample=False,
            max_new_tokens=steps,
            min_new_tokens=steps,  # EOS never drawn
            repetition_penalty=penalty,
        )
    return [int(t) for t in out[0, len(ids) :]]


def test_presence_and_frequency_penalties_are_vllms(
    client: openai.OpenAI, server: LiveServer, tiny_model: Path
) -> None:
    ids = token_ids(server, PROMPT)
    eos = [one_token(server, t) for t in EOS_TEXTS]
    no_eos = {str(t): -100 for t in eos}
    plain = _reference_penalties(tiny_model, ids, 16, eos, 0.0, 0.0)
    assert generated_ids(client, ids, max_tokens=16, logit_bias=no_eos) == plain
    for presence, frequency in ((2.0, 0.0), (0.0, 2.0), (-2.0, 0.0), (0.5, -2.0)):
        expected = _reference_penalties(tiny_model, ids, 16, eos, presence, frequency)
        assert expected != plain  # the penalty changes this answer
        got = generated_ids(
            client,
            ids,
            max_tokens=16,
            logit_bias=no_eos,
            presence_penalty=presence,
            frequency_penalty=frequency,
        )
        assert got == expected, (presence, frequency)
    streamed = list(
        client.completions.create(
            model=MODEL,
            prompt=ids,
            max_tokens=16,
            temperature=0,
            logit_bias=no_eos,
            frequency_penalty=2.0,
            stream=True,
        )
    )
    whole = client.completions.create(
        model=MODEL,
        prompt=ids,
        max_tokens=16,
        temperature=0,
        logit_bias=no_eos,
        frequency_penalty=2.0,
    )
    assert texts_by_index(streamed) == {0: whole.choices[0].text}
    body = bad_request(
        lambda: client.completions.create(model=MODEL, prompt="x", presence_penalty=2.5)
    )
    assert body["param"] == "presence_penalty"


def test_repetition_penalty_is_transformers(
    client: openai.OpenAI, server: LiveServer, tiny_model: Path
) -> None:
    ids = token_ids(server, PROMPT)
    no_eos = {str(one_token(server, t)): -100 for t in EOS_TEXTS}
    expected = _reference_repetition(tiny_model, ids, 16, 1.8)
    assert expected != _reference_repetition(tiny_model, ids, 16, 1.0)
    got = generated_ids(
        client, ids, max_tokens=16, logit_bias=no_eos, extra_body={"repetition_penalty": 1.8}
    )
    assert got == expected
    body = bad_request(
        lambda: client.completions.create(
            model=MODEL, prompt="x", extra_body={"repetition_penalty": 0}
        )
    )
    assert body["param"] == "repetition_penalty"


def test_top_k_and_min_p(client: openai.OpenAI) -> None:
    greedy = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0)
    for extra in ({"top_k": 1}, {"min_p": 1.0}):
        sampled = client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=10, temperature=1.5, seed=77, extra_body=extra
        )
        assert sampled.choices[0].text == greedy.choices[0].text


# ------------------------------------------------------------------ roles, content, refusals


def test_developer_role_is_system_and_tool_role_is_accepted(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 6, "seed": 14}
    as_system = client.chat.completions.create(
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES], **kwargs
    )
    as_developer = client.chat.completions.create(
        messages=[{"role": "developer", "content": "Be brief."}, *MESSAGES], **kwargs
    )
    assert as_developer.choices[0].message.content == as_system.choices[0].message.content
    assert as_developer.usage == as_system.usage
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    with_tool = client.chat.completions.create(
        messages=[
            *MESSAGES,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42 records"},
        ],
        **kwargs,
    )
    alone = client.chat.completions.create(messages=MESSAGES, **kwargs)
    assert with_tool.usage is not None and alone.usage is not None
    assert with_tool.usage.prompt_tokens > alone.usage.prompt_tokens  # the tool's answer is in


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ],
)
def test_non_text_parts_are_refused_by_type(client: openai.OpenAI, part: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]}]
    body = bad_request(
        lambda: client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    )
    assert "accepts text only" in body["message"] and f"'{part['type']}'" in body["message"]
    assert body["param"] == "messages[0].content[1]"


@pytest.mark.parametrize(
    ("endpoint", "field", "value"),
    [
        ("chat", "functions", [{"name": "lookup"}]),
        ("chat", "function_call", "auto"),
        ("chat", "response_format", {"type": "structural_tag", "structures": [], "triggers": []}),
        ("chat", "guided_decoding_backend", "outlines"),
        ("completions", "suffix", " and so on"),
        ("completions", "use_beam_search", True),
        ("completions", "structural_tag", '{"structures": [], "triggers": []}'),
    ],
)
def test_unsupported_fields_are_400_not_ignored(
    server: LiveServer, endpoint: str, field: str, value: Any
) -> None:
    base: dict[str, Any] = (
        {"model": MODEL, "messages": MESSAGES, "max_tokens": 2}
        if endpoint == "chat"
        else {"model": MODEL, "prompt": PROMPT, "max_tokens": 2}
    )
    url = f"{server.url}/v1/{'chat/completions' if endpoint == 'chat' else 'completions'}"
    auth = {"Authorization": f"Bearer {KEY}"}
    refused = httpx.post(url, json={**base, field: value}, headers=auth)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == field
    assert "not supported by the built-in engine yet" in error["message"]
    harmless = {
        "functions": [],
        "function_call": "none",
        "response_format": {"type": "text"},
        "guided_decoding_backend": "xgrammar",
    }
    if field in harmless:  # the defaults change nothing, so they are accepted
        assert (
            httpx.post(url, json={**base, field: harmless[field]}, headers=auth).status_code == 200
        )


def test_chat_template_options(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 1}
    usual = client.chat.completions.create(**kwargs)
    bare = client.chat.completions.create(**kwargs, extra_body={"add_generation_prompt": False})
    assert usual.usage is not None and bare.usage is not None
    assert bare.usage.prompt_tokens < usual.usage.prompt_tokens
