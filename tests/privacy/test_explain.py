"""`--explain`: each finding with its score, check and context; each near miss with why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.privacy.explain import explain
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy

POLICY_FILE = Path(__file__).parents[2] / "policies" / "desensitization.yaml"
ID = "11010519491231002X"


@pytest.fixture(scope="module")
def policy() -> PrivacyPolicy:
    return load_privacy_policy(POLICY_FILE)


def by_span(policy: PrivacyPolicy, text: str) -> dict[str, dict]:
    return {text[e.start : e.end]: e.as_dict() for e in explain(policy, text)}


def test_a_taken_value_shows_its_check_and_the_label_that_raised_it(policy: PrivacyPolicy) -> None:
    entry = by_span(policy, f"身份证号 {ID}")[ID]
    assert entry["taken"] and entry["type"] == "CN_RESIDENT_ID" and entry["score"] == 1.0
    assert "check digit" in entry["validator"]
    assert entry["context"] == ["raised +0.60 by keyword 身份证 2 chars before"]


def test_a_suppressed_value_names_the_keyword_and_its_distance(policy: PrivacyPolicy) -> None:
    entry = by_span(policy, f"订单号：{ID}")[ID]
    assert not entry["taken"] and entry["score"] == 0.4
    assert entry["context"] == ["lowered -0.60 by keyword 订单号 1 chars before"]
    assert "under min_score 0.50" in entry["reason"]


def test_near_misses_say_why_they_are_no_value(policy: PrivacyPolicy) -> None:
    wrong_check = ID[:-1] + "1"
    found = by_span(policy, f"证件 {wrong_check}，卡 6222021234567895，备注10012345678")
    assert found[wrong_check]["reason"] == "check digit wrong"
    assert found["6222021234567895"]["reason"] == "Luhn check fails"
    unlabelled = found["10012345678"]
    assert not unlabelled["taken"] and "no label" in unlabelled["reason"]


def test_every_finding_the_policy_acts_on_is_explained_as_taken(policy: PrivacyPolicy) -> None:
    text = f"手机13812345678，邮箱a.b@example.com，订单号 {ID}，IP 10.0.0.8"
    taken = {(e.start, e.end, e.type) for e in explain(policy, text) if e.taken}
    assert taken == {(f.start, f.end, f.type) for f in policy.find(text)}


@pytest.mark.slow  # several seconds (subprocesses); in make test, not make check
def test_the_cli_prints_explanations_in_jsonl_and_text(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_HOME"] = str(tmp_path / "home")
    line = json.dumps({"text": f"订单号 {ID}，手机号：10012345678"}, ensure_ascii=False) + "\n"

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "appliance", "privacy", "scan", "--policy"]
        return subprocess.run(
            [*command, str(POLICY_FILE), *args],
            input=line, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    out = scan("--explain")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert [e["taken"] for e in record["explain"]] == [False, True]
    assert record["findings"] == [
        {"start": 27, "end": 38, "type": "CN_PHONE", "action": "pseudonymize"}
    ]
    text = scan("--explain", "--format", "text")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"订单号 {ID}，手机号：[CN_PHONE_1]"
    assert "lowered -0.60 by keyword 订单号" in lines[1] and lines[2].startswith("  taken CN_PHONE")
    plain = scan()
    assert "explain" not in json.loads(plain.stdout)  # the contract's shape without the flag
    refused = scan("--explain", "x.jsonl")
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")
