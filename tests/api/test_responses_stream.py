"""The Responses API's events through the answer pipeline: a streamed response gets exactly
what the same response whole gets, however its text is split between delta events.

The model's text holds the caller's placeholder (restored), a phone number of its own
(masked) and ends with a placeholder and the start of something bracketed, so the stages
still hold text back when the deltas stop: it is released as one more delta, before the
``response.output_text.done`` event, and the ``*.done`` and ``response.completed`` events
carry what the deltas add up to.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.context import ApiCall
from appliance.api.pipeline import AnswerPipeline, prepare_request
from appliance.api.responses import ResponseEvents, response_texts
from appliance.auth.principal import Principal
from appliance.finetune.policy import FinetunePolicy
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PHONE, OTHER = "13812345678", "13912345678"
KEY = b"k" * 32
USAGE = {"input_tokens": 7, "output_tokens": 11, "total_tokens": 18}


def _policy() -> PrivacyPolicy:
    policy = load_privacy_policy(POLICIES / "desensitization.yaml")
    return dataclasses.replace(policy, audit_content="desensitized")


def _prepared() -> tuple[ApiCall, AnswerPipeline, str]:
    call = ApiCall()
    payload: dict[str, Any] = {"model": "m", "input": f"my phone is {PHONE}, please repeat it."}
    answer = prepare_request(
        call,
        Principal(name="tester", user_id=1, roles=("developer",), key_prefix="sk-app-test"),
        payload,
        alias="alias",
        privacy=_policy(),
        privacy_key=KEY,
        content_key=KEY,
        finetune=FinetunePolicy(),
    )
    sent = payload["input"]
    assert PHONE not in sent
    placeholder = sent[sent.index("[") : sent.index("]") + 1]
    return call, answer, f"OK: {placeholder}, and mine is {OTHER}. Thanks! {placeholder} [NOTE"


def _response(text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": [part]}
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": "served",
        "status": status,
        "output": [item],
        "usage": USAGE,
    }


def _whole() -> tuple[ApiCall, str]:
    call, answer, text = _prepared()
    result = _response(text)
    answer.whole(result, response_texts)
    return call, result["output"][0]["content"][0]["text"]


def _streamed(cuts: list[int]) -> tuple[ApiCall, list[dict[str, Any]]]:
    call, answer, text = _prepared()
    events = ResponseEvents(answer, "alias")
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    bounds = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    upstream = [
        {"type": "response.created", "response": {**_response(""), "output": [], "usage": None}},
        {"type": "response.content_part.added", "part": {"type": "output_text", "text": ""}, **at},
        *(
            {"type": "response.output_text.delta", "delta": text[a:b], **at}
            for a, b in itertools.pairwise(bounds)
        ),
        {"type": "response.output_text.done", "text": text, **at},
        {"type": "response.content_part.done", "part": {"type": "output_text", "text": text}, **at},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": _response(text)["output"][0],
        },
        {"type": "response.completed", "response": _response(text)},
    ]
    out = [caller for event in upstream for caller in events.event(event)]
    answer.end_stream()
    return call, out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_any_split_of_a_streamed_response_equals_the_whole_one(cuts: list[int]) -> None:
    whole_call, whole_text = _whole()
    assert PHONE in whole_text and OTHER not in whole_text  # restored; the model's masked
    stream_call, events = _streamed(cuts)
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == whole_text
    kinds = [e["type"] for e in events]
    done = kinds.index("response.output_text.done")
    assert "response.output_text.delta" not in kinds[done:]  # what was held comes before
    (text_done,) = [e for e in events if e["type"] == "response.output_text.done"]
    assert text_done["text"] == whole_text
    (part_done,) = [e for e in events if e["type"] == "response.content_part.done"]
    assert part_done["part"]["text"] == whole_text
    (item_done,) = [e for e in events if e["type"] == "response.output_item.done"]
    assert item_done["item"]["content"][0]["text"] == whole_text
    completed = events[-1]["response"]
    assert completed["output"][0]["content"][0]["text"] == whole_text
    assert completed["model"] == "alias" and events[0]["response"]["model"] == "alias"
    assert stream_call.details == whole_call.details
    assert (stream_call.prompt_tokens, stream_call.completion_tokens) == (7, 11)
    assert whole_call.capture is not None and stream_call.capture is not None
    assert stream_call.capture.fields(None) == whole_call.capture.fields(None)


def test_a_stream_cut_before_its_usage_is_counted() -> None:
    call, answer, _ = _prepared()
    events = ResponseEvents(answer, "alias")
    for piece in ("Hello", " there"):
        events.event({"type": "response.output_text.delta", "delta": piece, "output_index": 0})
    answer.end_stream()
    assert call.completion_tokens == 2
    assert call.details["usage_source"] == "counted"


def test_tool_call_arguments_and_reasoning_are_texts_too() -> None:
    call, answer, text = _prepared()
    placeholder = text[text.index("[") : text.index("]") + 1]
    events = ResponseEvents(answer, "alias")
    out = events.event(
        {"type": "response.function_call_arguments.delta", "delta": f'{{"p": "{placeholder}"}}'}
    )
    out += events.event({"type": "response.function_call_arguments.done", "arguments": "x"})
    out += events.event(
        {"type": "response.reasoning_text.delta", "delta": f"call {OTHER}.", "output_index": 1}
    )
    out += events.event({"type": "response.reasoning_text.done", "text": "", "output_index": 1})
    arguments = "".join(
        e.get("delta", "") for e in out if e["type"].startswith("response.function_call")
    )
    assert arguments == f'{{"p": "{PHONE}"}}'
    assert out[-1]["text"] == "call 139****5678."
    assert call.details["privacy"]["output"] == {"CN_PHONE": 1}
