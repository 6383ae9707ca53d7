"""Actions on findings, pseudonyms and their restoration, the policy file, the scan CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config import SHIPPED_POLICIES
from appliance.errors import PolicyError
from appliance.privacy.detectors import TYPES
from appliance.privacy.policy import load_privacy_policy
from appliance.privacy.transform import Blocked, Pseudonyms, StreamRestorer, desensitize, mask

ALL_PSEUDONYMIZE = dict.fromkeys(TYPES, "pseudonymize")
VALUES = [
    "13812345678",
    "+86 139-1234-5678",
    "11010519491231002X",
    "6222 0212 3456 7894",
    "alice@example.com",
    "192.168.1.1",
    "E12345678",
    "123-45-6789",
    "[CN_PHONE_1]",  # a placeholder-looking literal must survive too
]


def test_each_action() -> None:
    text = "电话13812345678 SSN 123-45-6789 mail bob@corp.cn"
    actions = {"CN_PHONE": "mask", "US_SSN": "redact", "EMAIL": "hash"}
    out = desensitize(text, actions, hash_key=b"k" * 32)
    assert out.text.startswith("电话138****5678 SSN [US_SSN] mail [EMAIL:")
    again = desensitize(text, actions, hash_key=b"k" * 32).text
    other_key = desensitize(text, actions, hash_key=b"x" * 32).text
    assert out.text == again != other_key  # stable per deployment key
    assert out.counts() == {"CN_PHONE": {"mask": 1}, "US_SSN": {"redact": 1}, "EMAIL": {"hash": 1}}
    with pytest.raises(Blocked) as blocked:
        desensitize(text, {"US_SSN": "block"})
    assert "US_SSN" in blocked.value.message and "123" not in blocked.value.message
    assert mask("bob@corp.cn", "EMAIL") == "b**@corp.cn"
    assert mask("１３８１２３４５６７８", "CN_PHONE") == "１３８****５６７８"


def test_the_same_value_gets_the_same_placeholder() -> None:
    pseudonyms = Pseudonyms()
    first = desensitize("call 13812345678 or 13912345678", ALL_PSEUDONYMIZE, pseudonyms)
    second = desensitize("again 13812345678", ALL_PSEUDONYMIZE, pseudonyms)
    assert first.text == "call [CN_PHONE_1] or [CN_PHONE_2]"
    assert second.text == "again [CN_PHONE_1]"
    assert pseudonyms.restore("回复[CN_PHONE_2]") == "回复13912345678"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(VALUES), st.text(max_size=12)), max_size=8))
def test_restore_undoes_pseudonymize(parts: list[str]) -> None:
    text = " ".join(parts)
    pseudonyms = Pseudonyms()
    hidden = desensitize(text, ALL_PSEUDONYMIZE, pseudonyms)
    assert pseudonyms.restore(hidden.text) == text


def test_the_shipped_policy_loads_and_overrides_apply() -> None:
    policy = load_privacy_policy(SHIPPED_POLICIES / "desensitization.yaml")
    assert policy.actions_for()["CN_PHONE"] == "pseudonymize"
    assert policy.actions_for(["auditor"])["CN_PHONE"] == "redact"
    assert set(policy.actions_for()) == set(TYPES)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("actions:\n  CN_PHONE: shred\n", r":2: CN_PHONE: unknown action 'shred'"),
        ("actions:\n  PHONE: mask\n", r":2: unknown type 'PHONE'"),
        ("restore: maybe\n", r":1: restore must be true or false"),
        ("output: drop\n", r":1: output must be one of"),
        ("actions: [1, 2]\n", r":1: actions must be a mapping"),
        ("colour: red\n", r":1: unknown field 'colour'"),
        ("actions:\n  CN_PHONE: [\n", r"not valid YAML"),
    ],
)
def test_invalid_policies_name_the_line(tmp_path: Path, body: str, error: str) -> None:
    path = tmp_path / "desensitization.yaml"
    path.write_text(body)
    with pytest.raises(PolicyError, match=error):
        load_privacy_policy(path)


def scan(*args: str, stdin: str = "", home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "privacy", "scan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={"APPLIANCE_HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_scan_cli_contract(tmp_path: Path) -> None:
    lines = [{"text": "电话１３８１２３４５６７８，卡号6222021234567894"}, {"text": "no data"}]
    stdin = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    done = scan("--format", "jsonl", stdin=stdin, home=tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert [(f["start"], f["end"], f["type"]) for f in first["findings"]] == [
        (2, 13, "CN_PHONE"),
        (16, 32, "BANK_CARD"),
    ]
    assert first["text"] == "电话[CN_PHONE_1]，卡号[BANK_CARD_1]"
    assert second == {"findings": [], "text": "no data"}


def test_scan_cli_refuses_bad_input_and_writes_datasets_whole(tmp_path: Path) -> None:
    bad = scan("--format", "jsonl", stdin='{"text": "ok"}\n[1]\n', home=tmp_path)
    assert bad.returncode == 1 and 'line 2: expected an object with a string "text"' in bad.stderr
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"text": "SSN 123-45-6789"}\n{"text": "x"}\nnot json\n')
    failed = scan(str(source), "--out", str(out), home=tmp_path)
    assert failed.returncode == 1 and "line 3: not JSON" in failed.stderr
    assert not out.exists() and list(tmp_path.glob(".out.jsonl.*")) == []
    source.write_text('{"text": "SSN 123-45-6789"}\n{"text": "x"}\n')
    done = scan(str(source), "--out", str(out), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "US_SSN 1" in done.stderr
    assert json.loads(out.read_text().splitlines()[0])["text"] == "SSN [US_SSN]"


def split_points(text: str) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(text)), max_size=len(text)).map(sorted)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_streamed_restoration_equals_restoring_the_whole(data: st.DataObject) -> None:
    pseudonyms = Pseudonyms()
    desensitize("a 13812345678 b 6222021234567894 c 13912345678", ALL_PSEUDONYMIZE, pseudonyms)
    pieces = st.sampled_from(["[CN_PHONE_1]", "[BANK_CARD_1]", "[CN_PHONE_2]", "[", "]", "_1"])
    answer = "".join(data.draw(st.lists(st.one_of(pieces, st.text(max_size=6)), max_size=12)))
    cuts = data.draw(split_points(answer))
    chunks = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
    restorer = StreamRestorer(pseudonyms)
    streamed = "".join(restorer.feed(chunk) for chunk in chunks) + restorer.flush()
    assert streamed == pseudonyms.restore(answer)


def test_only_a_possible_placeholder_start_is_held_back() -> None:
    pseudonyms = Pseudonyms()
    desensitize("13812345678", ALL_PSEUDONYMIZE, pseudonyms)
    restorer = StreamRestorer(pseudonyms)
    assert restorer.feed("call [CN_PH") == "call "
    assert restorer.feed("ONE_1] now [x") == "13812345678 now [x"
    assert restorer.feed("") == ""
    assert restorer.flush() == ""


def test_custom_terms_are_found_whole_words_any_case(tmp_path: Path) -> None:
    path = tmp_path / "desensitization.yaml"
    path.write_text(
        "actions:\n  CUSTOM: redact\ndictionaries:\n"
        "  codenames: [Project Falcon, Falcon, 天穹计划]\n  clients: [ACME]\n"
    )
    policy = load_privacy_policy(path)
    text = "project falcon 与天穹计划由acme和ACME Corp负责, falconry 不算, 电话13812345678"
    out = desensitize(text, policy.actions_for(), find=policy.find)
    assert (
        out.text
        == "[CUSTOM] 与[CUSTOM]由[CUSTOM]和[CUSTOM] Corp负责, falconry 不算, 电话138****5678"
    )
    kinds = [(a.finding.type, text[a.finding.start : a.finding.end]) for a in out.applied]
    assert kinds == [
        ("CUSTOM", "project falcon"),
        ("CUSTOM", "天穹计划"),
        ("CUSTOM", "acme"),
        ("CUSTOM", "ACME"),
        ("CN_PHONE", "13812345678"),
    ]


def test_dictionaries_must_be_lists_of_terms(tmp_path: Path) -> None:
    path = tmp_path / "desensitization.yaml"
    path.write_text("dictionaries:\n  codenames: Falcon\n")
    with pytest.raises(PolicyError, match=r":2: dictionaries.codenames must be a list"):
        load_privacy_policy(path)
