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
