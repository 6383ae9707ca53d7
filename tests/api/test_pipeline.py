"""The answer pipeline: a streamed answer gets exactly what the same answer whole gets.

Whole answers and streams run the same stages (output scan, restore, audit capture,
training capture, accounting); only the pieces differ. So for any split of an answer into
chunks, the caller's text, the audit event's content and counts, and the usage must be the
ones of the whole answer.
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
from appliance.auth.principal import Principal
from appliance.finetune.policy import FinetunePolicy
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PHONE, OTHER = "13812345678", "13912345678"
KEY = b"k" * 32


def _policy(**changes: Any) -> PrivacyPolicy:
    policy = load_privacy_policy(POLICIES / "desensitization.yaml")
    return dataclasses.replace(policy, **changes)


def _principal() -> Principal:
    return Principal(name="tester", user_id=1, roles=("developer",), key_prefix="sk-app-test")


def _prepared(policy: PrivacyPolicy) -> tuple[ApiCall, AnswerPipeline, dict[str, Any]]:
    call = ApiCall()
    payload: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": f"我的电话{PHONE}，请复述。"}],
    }
    answer = prepare_request(
        call,
        _principal(),
        payload,
        alias="m",
        privacy=policy,
        privacy_key=KEY,
        content_key=KEY,
        finetune=FinetunePolicy(),
        chat=True,
    )
    return call, answer, payload


def _placeholder(payload: dict[str, Any]) -> str:
    text = payload["messages"][0]["content"]
    assert PHONE not in text
    start = text.index("[")
    return text[start : text.index("]", start) + 1]


def _model_answer(payload: dict[str, Any]) -> str:
    ph = _placeholder(payload)
    return f"好的：{ph}，另外我的号码是{OTHER}。Thanks! {ph} [NOTE"


def _whole(policy: PrivacyPolicy) -> tuple[ApiCall, str]:
    call, answer, payload = _prepared(policy)
    result = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": _model_answer(payload)}}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 11},
    }
    result["choices"][0]["finish_reason"] = "stop"
    answer.whole(result)
    return call, result["choices"][0]["message"]["content"]


def _streamed(policy: PrivacyPolicy, cuts: list[int]) -> tuple[ApiCall, str]:
    call, answer, payload = _prepared(policy)
    text = _model_answer(payload)
    bounds = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    out = []
    for a, b in itertools.pairwise(bounds):
        chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": text[a:b]}}]}
        answer.chunk(chunk)
        out.append(chunk["choices"][0]["delta"]["content"])
    end: dict[str, Any] = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    answer.chunk(end)
    out.append(end["choices"][0]["delta"].get("content", ""))
    usage: dict[str, Any] = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 11}}
    answer.chunk(usage)
    return call, "".join(out)


def test_whole_answer_is_restored_and_the_models_own_number_masked() -> None:
    call, text = _whole(_policy(audit_content="desensitized"))
    assert PHONE in text  # the caller's own number, restored
    assert OTHER not in text  # the model's own, masked (output: mask)
    assert call.details["privacy"]["output"] == {"CN_PHONE": 1}
    assert call.details["finish_reason"] == "stop"
    assert (call.prompt_tokens, call.completion_tokens) == (7, 11)
    content = call.capture.fields(None)["content"] if call.capture else {}
    assert PHONE not in content["answers"][0]  # the audit keeps what the model wrote


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_any_split_of_a_stream_equals_the_whole_answer(cuts: list[int]) -> None:
    policy = _policy(audit_content="desensitized")
    whole_call, whole_text = _whole(policy)
    stream_call, stream_text = _streamed(policy, cuts)
    assert stream_text == whole_text
    assert stream_call.details == whole_call.details
    assert (stream_call.prompt_tokens, stream_call.completion_tokens) == (7, 11)
    assert whole_call.capture is not None and stream_call.capture is not None
    assert stream_call.capture.fields(None) == whole_call.capture.fields(None)


def test_without_restore_or_output_scan_the_stages_are_left_out() -> None:
    call, answer, payload = _prepared(_policy(restore=False, output="allow"))
    assert answer.stages == []
    result = {"choices": [{"index": 0, "message": {"content": _model_answer(payload)}}]}
    answer.whole(result)
    assert result["choices"][0]["message"]["content"] == _model_answer(payload)
    assert "output" not in call.details.get("privacy", {})


# --- every text field -------------------------------------------------------------------

EMAIL = "zhang.wei@example.com"


def _every_field_request() -> dict[str, Any]:
    return {
        "model": "m",
        "user": EMAIL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "name": f"u{PHONE}", "content": [{"type": "text", "text": PHONE}]},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": f"the user gave {PHONE}",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": f'{{"phone": "{PHONE}"}}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f'{{"owner_email": "{EMAIL}"}}'},
        ],
    }


def test_every_text_of_a_request_is_desensitized() -> None:
    call, payload = ApiCall(), _every_field_request()
    prepare_request(
        call,
        _principal(),
        payload,
        alias="m",
        privacy=_policy(),
        privacy_key=KEY,
        content_key=KEY,
        finetune=FinetunePolicy(),
        chat=True,
    )
    sent = repr(payload)
    assert PHONE not in sent and EMAIL not in sent
    assert payload["user"].startswith("[EMAIL_")
    assert payload["messages"][1]["name"].startswith("u[CN_PHONE_")
    arguments = payload["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert arguments.startswith('{"phone": "[CN_PHONE_') and arguments.endswith('"}')
    assert call.details["privacy"]["input"] == {
        "CN_PHONE": {"pseudonymize": 4},
        "EMAIL": {"pseudonymize": 2},
    }


def _tool_answer(placeholder: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "reasoning_content": f"look up {placeholder}; my own is {OTHER}",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": "call_2",
                "type": "function",
                "function": {"name": "sms", "arguments": f'{{"to": "{placeholder}"}}'},
            }
        ],
    }


def test_tool_call_arguments_and_reasoning_are_restored_and_scanned() -> None:
    _call, answer, payload = _prepared(_policy())
    ph = _placeholder(payload)
    result = {"choices": [{"index": 0, "message": _tool_answer(ph), "finish_reason": "tool_calls"}]}
    answer.whole(result)
    message = result["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == f'{{"to": "{PHONE}"}}'
    assert message["reasoning_content"].startswith(f"look up {PHONE}; my own is ")
    assert OTHER not in message["reasoning_content"]  # the model's own number, masked


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_streamed_tool_calls_equal_the_whole(cuts: list[int]) -> None:
    _call, answer, payload = _prepared(_policy())
    ph = _placeholder(payload)
    whole = {"choices": [{"index": 0, "message": _tool_answer(ph), "finish_reason": "tool_calls"}]}
    answer.whole(whole)
    expected = whole["choices"][0]["message"]

    _, answer, payload = _prepared(_policy())
    ph = _placeholder(payload)
    source = _tool_answer(ph)
    reasoning, arguments = (
        source["reasoning_content"],
        source["tool_calls"][0]["function"]["arguments"],
    )
    got = {"reasoning_content": "", "arguments": ""}

    def pieces(text: str) -> list[str]:
        bounds = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
        return [text[a:b] for a, b in itertools.pairwise(bounds)]

    for piece in pieces(reasoning):
        chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": {"reasoning_content": piece}}]}
        answer.chunk(chunk)
        got["reasoning_content"] += chunk["choices"][0]["delta"]["reasoning_content"]
    for piece in pieces(arguments):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        chunk = {"choices": [{"index": 0, "delta": delta}]}
        answer.chunk(chunk)
        got["arguments"] += chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    end: dict[str, Any] = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    answer.chunk(end)
    delta = end["choices"][0]["delta"]
    got["reasoning_content"] += delta.get("reasoning_content", "")
    for call_delta in delta.get("tool_calls", []):
        got["arguments"] += call_delta["function"]["arguments"]
    assert got["reasoning_content"] == expected["reasoning_content"]
    assert got["arguments"] == expected["tool_calls"][0]["function"]["arguments"]
