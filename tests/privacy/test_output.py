"""Context rules, and scanning the model's own answer, whole and streamed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import PolicyError
from appliance.privacy.output import MAX_HOLD, scan, stream_scanner
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy
from appliance.privacy.transform import mask

CONTEXT_POLICY = """
dictionaries:
  codenames: [Project Falcon, 天穹计划, ACME]
min_score: 0.5
context:
  - types: [BANK_CARD, CN_RESIDENT_ID]
    keywords: [订单号, Order No]
    window: 12
    adjust: -0.6
  - types: [CN_PASSPORT]
    keywords: [护照]
    window: 4
    adjust: 0.2
"""
# Pieces an answer is made of: values of every kind, words, numbers that are not values,
# separators, and text that keeps a stream from cutting (long runs, grouped numbers).
PIECES = [
    "13812345678",
    "+86 139-1234-5678",
    "11010519491231002X",
    "6222 0212 3456 7894",
    "6222 0212 3456 7894 5",
    "alice@example.com",
    "192.168.1.1",
    "fe80::1",
    "E12345678",
    "123-45-6789",
    "GB82 WEST 1234 5698 7654 32",
    "粤B·D12345",
    "京A 12345",
    "(0755) 8888 6666",
    "91350100M000100Y43",
    "project falcon",
    "天穹计划",
    "acme",
    "订单号",
    "Order No",
    "护照",
    "[CN_PHONE_1]",
    "1.2.3.4.5",
    "v2",
    "WEST",
    " ",
    "  ",
    "，",
    "。",
    "\n",
    "电话",
    "the card",
    "1234",
    "x",
]


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PrivacyPolicy:
    path = tmp_path_factory.mktemp("policy") / "desensitization.yaml"
    path.write_text(CONTEXT_POLICY, encoding="utf-8")
    return load_privacy_policy(path)


def kinds(policy: PrivacyPolicy, text: str) -> list[tuple[str, str, float]]:
    return [(f.type, text[f.start : f.end], f.score) for f in policy.find(text)]


def test_a_keyword_nearby_lowers_or_raises_a_score(policy: PrivacyPolicy) -> None:
    assert kinds(policy, "订单号：11010519491231002X") == []  # lowered under min_score
    assert kinds(policy, "身份证：11010519491231002X") == [
        ("CN_RESIDENT_ID", "11010519491231002X", 1.0)
    ]
    # The keyword may follow the value, within the window, in any case.
    assert kinds(policy, "6222021234567894 (order no)") == []
    assert kinds(policy, "6222021234567894 is not an order no") != []
    assert kinds(policy, "护照E12345678") == [("CN_PASSPORT", "E12345678", 1.0)]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("context: {types: [CN_PHONE]}\n", r":1: context must be a list"),
        ("context:\n  - types: [CN_PHONE]\n", r":2: a context rule needs adjust, keywords"),
        (
            "context:\n  - {types: [NOPE], keywords: [a], window: 3, adjust: 0.1}\n",
            r":2: unknown type 'NOPE'",
        ),
        (
            "context:\n  - types: [CN_PHONE]\n    keywords: []\n    window: 3\n    adjust: 0.1\n",
            r":3: context keywords must be a list of non-empty strings",
        ),
        (
            "context:\n  - {types: [CN_PHONE], keywords: [a], window: 500, adjust: 0.1}\n",
            r":2: window must be a number from 1 to 64",
        ),
        (
            "context:\n  - {types: [CN_PHONE], keywords: [a], window: 3, adjust: -2}\n",
            r":2: adjust must be a number from -1 to 1",
        ),
        ("min_score: high\n", r":1: min_score must be a number from 0 to 1"),
        ("conversation_ttl: -1\n", r":1: conversation_ttl must be a number"),
    ],
)
def test_invalid_context_rules_name_the_line(tmp_path: Path, body: str, error: str) -> None:
    path = tmp_path / "desensitization.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(PolicyError, match=error):
        load_privacy_policy(path)


def test_whole_answers_are_masked_or_flagged(policy: PrivacyPolicy) -> None:
    text = "回电13912345678或写信给bob@corp.cn"
    masked, found = scan(text, policy.find_identifiers, "mask")
    assert masked == "回电139****5678或写信给b**@corp.cn"
    assert [f.type for f in found] == ["CN_PHONE", "EMAIL"]
    flagged, found = scan(text, policy.find, "flag")
    assert flagged == text and len(found) == 2


def streamed(policy: PrivacyPolicy, pieces: list[str], action: str = "mask") -> str:
    scanner = stream_scanner(policy, action)
    return "".join(scanner.feed(p) for p in pieces) + scanner.flush()


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_streamed_answer_is_scanned_exactly_as_the_whole(
    policy: PrivacyPolicy, data: st.DataObject
) -> None:
    parts = data.draw(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6))))
    text = "".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert streamed(policy, pieces) == scan(text, policy.find_identifiers, "mask")[0]


@settings(max_examples=1000, deadline=None)
@given(st.data())
def test_streams_of_digits_letters_and_separators_are_scanned_exactly(
    data: st.DataObject,
) -> None:
    """The bare detectors (no rules, no dictionary: the least held back) on dense text."""
    policy = PrivacyPolicy({})
    dense = st.text(alphabet="0123456789 -.abtAB@+(京粤，", max_size=8)
    text = "".join(data.draw(st.lists(st.one_of(st.sampled_from(PIECES), dense))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert streamed(policy, pieces) == scan(text, policy.find_identifiers, "mask")[0]


def test_only_what_could_still_change_is_held_back(policy: PrivacyPolicy) -> None:
    scanner = stream_scanner(policy, "mask")
    assert scanner.feed("你好，我的电话是138") == "你好，我的电话是"  # "138" may go on
    assert scanner.feed("12345678，请回电。") == "138****5678，请回电。"
    assert scanner.feed("Step t0 t1 and 3 ") == "Step t0 t1 and "  # "3 " may be a group
    assert scanner.feed("apples. ") == "3 apples. "
    assert scanner.feed("t0 ") == ""  # "t0 1381..." may be a grouped number...
    assert scanner.feed("t1 ") == "t0 "  # ...but "t0 t" is not
    # A tail that may start a dictionary term waits; so does a finding a context rule
    # scores, until the rule's window (12) has followed it.
    assert scanner.feed("see Proj") == "t1 see "
    assert scanner.feed("ect Falcon，卡6222021234567894，") == "[CUSTOM]，卡".replace(
        "[CUSTOM]", mask("Project Falcon", "CUSTOM")
    )
    assert scanner.feed("好" * 10) == ""
    assert scanner.feed("好") == mask("6222021234567894", "BANK_CARD") + "，" + "好" * 11
    assert scanner.flush() == ""


def test_a_run_with_no_safe_cut_is_released_after_max_hold() -> None:
    scanner = stream_scanner(PrivacyPolicy({}), "mask")
    out = "".join(scanner.feed("7" * 100) for _ in range(8))
    assert 0 < len(out) <= 800 and len(out) >= 800 - MAX_HOLD
    assert out + scanner.flush() == "7" * 800
