"""The content filter in the answer pipeline: every text of every choice (chat content,
tool-call arguments, completion text), whole and streamed in any split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.context import ApiCall
from appliance.api.pipeline import AnswerPipeline, prepare_request
from appliance.auth.principal import Principal
from appliance.content.policy import ContentPolicy, load_content_policy
from appliance.content.scan import ContentBlocked
from appliance.finetune.policy import FinetunePolicy
from appliance.privacy.policy import load_privacy_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
KEY = b"k" * 32
POLICY = """\
version: 1
categories:
  - name: codename
    terms: [Project BLUEFIN, 星河计划]
    mask: "[REDACTED]"
    action: {input: mask, output: mask}
  - name: gambling
    terms: [online casino]
    action: {input: block, output: block}
"""
ANSWER = "Sure: Project BLUEFIN ships; 星 河 计 划 too. See the online casino for odds."
MASKED = "Sure: [REDACTED] ships; [REDACTED] too. See the "


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> ContentPolicy:
    path = tmp_path_factory.mktemp("content") / "content.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return load_content_policy(path)


def prepared(policy: ContentPolicy, payload: dict[str, Any]) -> tuple[ApiCall, AnswerPipeline]:
    call = ApiCall()
    answer = prepare_request(
        call,
        Principal(name="t", user_id=1, roles=("developer",), key_prefix="sk-app-t"),
        payload,
        alias="m",
        privacy=load_privacy_policy(POLICIES / "desensitization.yaml"),
        privacy_key=KEY,
        content_key=KEY,
        finetune=FinetunePolicy(),
        chat="messages" in payload,
        content=policy,
    )
    return call, answer


def chat(policy: ContentPolicy, n: int = 1) -> tuple[ApiCall, AnswerPipeline]:
    return prepared(policy, {"model": "m", "n": n, "messages": [{"role": "user", "content": "hi"}]})


def tool_call(arguments: str) -> dict[str, Any]:
    return {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}


def test_the_request_is_masked_or_refused_in_every_text(policy: ContentPolicy) -> None:
    payload = {"model": "m", "prompt": ["about Project  BLUEFIN", "ok"]}
    call, _ = prepared(policy, payload)
    assert payload["prompt"] == ["about [REDACTED]", "ok"]
    assert call.details["content"]["input"] == {"codename": {"mask": 1}}
    asked = {
        "role": "assistant",
        "content": None,
        "tool_calls": [tool_call('{"q": "0nl1ne casino"}')],
    }
    tools = {"model": "m", "messages": [asked]}
    with pytest.raises(ContentBlocked):
        prepared(policy, tools)


def test_a_whole_chat_answer_is_masked_then_cut_per_choice(policy: ContentPolicy) -> None:
    call, answer = chat(policy, n=2)
    result = {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"},
    ]}  # fmt: skip
    answer.whole(result)
    first, second = result["choices"]
    assert first["message"]["content"] == MASKED and first["finish_reason"] == "content_filter"
    assert second["message"]["content"] == "fine" and second["finish_reason"] == "stop"
    assert call.details["content"]["output"] == {"codename": {"mask": 2}, "gambling": {"block": 1}}


def test_tool_call_arguments_and_completion_text_are_filtered(policy: ContentPolicy) -> None:
    _, answer = chat(policy)
    arguments = '{"name": "Project BLUEFIN"}'
    message = {"role": "assistant", "content": None, "tool_calls": [tool_call(arguments)]}
    result = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}]}
    answer.whole(result)
    sent = result["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert sent == '{"name": "[REDACTED]"}'
    _, completion = prepared(policy, {"model": "m", "prompt": "hi"})
    text = {"choices": [{"index": 0, "text": ANSWER, "finish_reason": "length"}]}
    completion.whole(text)
    assert text["choices"][0] == {"index": 0, "text": MASKED, "finish_reason": "content_filter"}


def stream(policy: ContentPolicy, text: str, cuts: list[int]) -> tuple[str, list[Any]]:
    _, answer = chat(policy)
    points = sorted({c % (len(text) + 1) for c in cuts} | {len(text)})
    out, reasons, at = [], [], 0
    pieces = [text[a:b] for a, b in zip([0, *points], points, strict=False)]
    for number, piece in enumerate(pieces):
        last = number == len(pieces) - 1
        chunk = {"choices": [{"index": 0, "delta": {"content": piece},
                              "finish_reason": "stop" if last else None}]}  # fmt: skip
        answer.chunk(chunk)
        for choice in chunk["choices"]:
            out.append(choice["delta"].get("content") or "")
            reasons.append(choice["finish_reason"])
        at += len(piece)
        if answer.cut:
            break
    return "".join(out), [r for r in reasons if r]


@settings(max_examples=120, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=15))
def test_any_split_of_a_stream_equals_the_whole_answer(
    policy: ContentPolicy, cuts: list[int]
) -> None:
    whole = {"choices": [{"index": 0, "message": {"content": ANSWER}, "finish_reason": "stop"}]}
    _, answer = chat(policy)
    answer.whole(whole)
    text, reasons = stream(policy, ANSWER, cuts)
    assert text == whole["choices"][0]["message"]["content"] == MASKED
    assert reasons == [whole["choices"][0]["finish_reason"]] == ["content_filter"]


def test_findings_are_counted_per_category_direction_and_action(
    policy: ContentPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.api import metrics
    from tests.api.test_metrics import scrape, value

    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    app = metrics.metrics_app()
    name = "appliance_api_content_findings_total"
    before = scrape(app)
    _, answer = prepared(policy, {"model": "m", "prompt": "Project BLUEFIN and 星河计划"})
    answer.whole({"choices": [{"index": 0, "text": "the online casino", "finish_reason": "stop"}]})
    after = scrape(app)

    def delta(**labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(category="codename", direction="input", action="mask") == 2
    assert delta(category="gambling", direction="output", action="block") == 1


def test_role_and_key_overrides_change_the_action(tmp_path: Path) -> None:
    path = tmp_path / "content.yaml"
    path.write_text(
        POLICY
        + "overrides:\n  roles:\n    auditor: {gambling: {input: flag}}\n"
        + "    developer: {gambling: {input: mask}}\n"
        + "  keys:\n    sk-app-k1: {gambling: {input: allow, output: flag}}\n",
        encoding="utf-8",
    )
    policy = load_content_policy(path)
    assert policy.actions_for([])["gambling"].input == "block"
    assert policy.actions_for(["auditor"])["gambling"].input == "flag"
    # several roles: in name order, the last one's override wins
    assert policy.actions_for(["developer", "auditor"])["gambling"].input == "mask"
    key = policy.actions_for(["auditor"], "sk-app-k1")["gambling"]
    assert (key.input, key.output) == ("allow", "flag")  # the key's override comes last
    payload = {"model": "m", "prompt": "an online casino"}
    call = ApiCall()
    prepare_request(
        call,
        Principal(name="t", user_id=1, roles=("auditor",), key_prefix="sk-app-k2"),
        payload,
        alias="m",
        privacy=load_privacy_policy(POLICIES / "desensitization.yaml"),
        privacy_key=KEY,
        content_key=KEY,
        finetune=FinetunePolicy(),
        content=policy,
    )  # flagged for an auditor, not refused
    assert call.details["content"]["input"] == {"gambling": {"flag": 1}}
