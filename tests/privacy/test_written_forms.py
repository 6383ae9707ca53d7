"""Identifiers as real text writes them (issue 17): glued to letters, spaced by OCR or by
hand, with zero-width or full-width characters inside; labels that bind to the value they
are written next to; and the look-alikes that stay untouched. Each case is checked with the
shipped policy, whole and streamed split at every point."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.privacy.output import scan, stream_scanner
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy
from appliance.privacy.validators import bank_card, uscc

POLICY_FILE = Path(__file__).parents[2] / "policies" / "desensitization.yaml"
ID = "11010519491231002X"


def _digit_uscc() -> str:
    for n in range(10**8, 10**8 + 5000):
        body = f"91110108{n:09d}"
        for last in "0123456789":
            if uscc(body + last):
                return body + last
    raise AssertionError("no all-digit credit code found")


def _luhn_completed(prefix: str) -> str:
    for last in "0123456789":
        if bank_card(prefix + last):
            return prefix + last
    raise AssertionError(prefix)


CARD = _luhn_completed("622202123456789")
POSITIVE = [
    ("Tel13807885261", "CN_PHONE", "13807885261"),
    ("IDcard" + ID + " 已核验", "CN_RESIDENT_ID", ID),
    ("身份证 110105 19491231 002X", "CN_RESIDENT_ID", "110105 19491231 002X"),
    ("身份证 1101051949 1231002X", "CN_RESIDENT_ID", "1101051949 1231002X"),
    ("手机 138.1589.2906", "CN_PHONE", "138.1589.2906"),
    ("手机 138 1589 2906", "CN_PHONE", "138 1589 2906"),
    ("电话 02162345678", "CN_LANDLINE", "02162345678"),
    ("电话 075588886666", "CN_LANDLINE", "075588886666"),
    ("车牌鲁V-372BW", "CN_LICENSE_PLATE", "鲁V-372BW"),
    ("addr 2001:db8:: end", "IP_ADDRESS", "2001:db8::"),
    ("手机138\u200b1234\u200b5678", "CN_PHONE", "138\u200b1234\u200b5678"),
    ("手机１３８１２３４５６７８", "CN_PHONE", "１３８１２３４５６７８"),
    ("身份证号 " + ID + "，订单号 123456789012", "CN_RESIDENT_ID", ID),
    ("订单号 123456789012，身份证号 " + ID, "CN_RESIDENT_ID", ID),
    ("手机号：10012345678", "CN_PHONE", "10012345678"),
    ("call me at 12012345678", "CN_PHONE", "12012345678"),
    ("cardno" + CARD, "BANK_CARD", CARD),
    ("3单元401IDcard" + ID + " 备注", "CN_RESIDENT_ID", ID),
    ("SSN: 695100211", "US_SSN", "695100211"),
    ("target [::ffff:10.23.210.54]:5432", "IP_ADDRESS", "::ffff:10.23.210.54"),
    ("卡号 " + CARD[:6] + "\u200b" + CARD[6:] + "。", "BANK_CARD", CARD[:6] + "\u200b" + CARD[6:]),
    ("卡号 " + CARD[:15] + "\ufeff" + CARD[15:], "BANK_CARD", CARD[:15] + "\ufeff" + CARD[15:]),
    ("3单元303 075580397868\n", "CN_LANDLINE", "075580397868"),
    ("1单元1003 0731-74072654\n", "CN_LANDLINE", "0731-74072654"),
]
NEGATIVE = [
    "app_version=2.13.26.18",
    "固件版本 3.1.0.12",
    "Mozilla/5.0 Chrome/128.0.0.0 Safari/537.36",
    "依据第1.2.1.2条办理",
    "see section 4.1.5.5",
    "logo@2x.png",
    "orderNo " + CARD,
    "SKU " + CARD,
    "条码 " + CARD,
    "ISBN 9787111213826",
    "快递单号 " + CARD,
    "订单号" + _digit_uscc(),
    "批次 2024-6222-0212-3456-7894-11",
    "编号10012345678",  # shaped like a mobile, prefix 100 not allocated, no label
    "SN" + CARD,
    "运单SF034835118698",
    "Edg/103.0.17.35 reported a crash",
    "Tracking number: " + CARD,
    "设备序列号 7868-13840477067-41",
    "合同编号 HT-41-" + ID + "-38",
    "参考编号 56-" + CARD + "-2635",
    "库位码 78 15024763525 803",
    "编号 695100211",  # nine digits that pass the SSN rules, without their label
]


@pytest.fixture(scope="module")
def policy() -> PrivacyPolicy:
    return load_privacy_policy(POLICY_FILE)


def found(policy: PrivacyPolicy, text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in policy.find(text)]


def every_split_streams_as_the_whole(policy: PrivacyPolicy, text: str) -> None:
    whole = scan(text, policy.find_identifiers, "mask")[0]
    for cut in range(len(text) + 1):
        scanner = stream_scanner(policy, "mask")
        out = scanner.feed(text[:cut]) + scanner.feed(text[cut:]) + scanner.flush()
        assert out == whole, (text, cut)


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVE)
def test_the_value_is_found_as_written(
    policy: PrivacyPolicy, text: str, kind: str, value: str
) -> None:
    assert found(policy, text) == [(kind, value)]
    every_split_streams_as_the_whole(policy, text)


@pytest.mark.parametrize("text", NEGATIVE)
def test_look_alikes_stay_untouched(policy: PrivacyPolicy, text: str) -> None:
    assert found(policy, text) == []
    every_split_streams_as_the_whole(policy, text)


def test_two_phones_side_by_side_are_two_values(policy: PrivacyPolicy) -> None:
    text = "+86 13812345678 8613812345678"
    assert found(policy, text) == [("CN_PHONE", "+86 13812345678"), ("CN_PHONE", "8613812345678")]


def test_a_weak_number_is_not_taken_without_a_policy_label() -> None:
    """Without context rules, a number only shaped like a mobile is not a finding."""
    bare = PrivacyPolicy({})
    assert bare.find("手机号：10012345678") == []
    assert [f.type for f in bare.find("手机号：13812345678")] == ["CN_PHONE"]
