"""Detectors: every type found where it is written, validated, and nothing else taken."""

from __future__ import annotations

import pytest

from appliance.privacy.detectors import TYPES, detect, fold
from appliance.privacy.validators import bank_card, iban, luhn, resident_id, uscc


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in detect(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("电话13812345678，请回电", [("CN_PHONE", "13812345678")]),
        ("Call +86 138-1234-5678 now", [("CN_PHONE", "+86 138-1234-5678")]),
        ("手机 0086 139 1234 5678。", [("CN_PHONE", "0086 139 1234 5678")]),
        ("全角１３８１２３４５６７８号码", [("CN_PHONE", "１３８１２３４５６７８")]),
        ("身份证11010519491231002X办理", [("CN_RESIDENT_ID", "11010519491231002X")]),
        ("旧证号110105491231002", [("CN_RESIDENT_ID", "110105491231002")]),
        ("卡号6222 0212 3456 7894", [("BANK_CARD", "6222 0212 3456 7894")]),
        ("card 6222021234567894.", [("BANK_CARD", "6222021234567894")]),
        ("座机(0755) 8888 6666", [("CN_LANDLINE", "(0755) 8888 6666")]),
        ("或者010-62345678转", [("CN_LANDLINE", "010-62345678")]),
        ("邮箱alice.w@example.com.cn谢谢", [("EMAIL", "alice.w@example.com.cn")]),
        ("host 192.168.1.1 up", [("IP_ADDRESS", "192.168.1.1")]),
        ("地址fe80::1ff:fe23:4567:890a的", [("IP_ADDRESS", "fe80::1ff:fe23:4567:890a")]),
        ("护照E12345678和EA1234567", [("CN_PASSPORT", "E12345678"), ("CN_PASSPORT", "EA1234567")]),
        ("信用代码91350100M000100Y43。", [("CN_USCC", "91350100M000100Y43")]),
        (
            "车牌粤B·D12345和京A12345",
            [("CN_LICENSE_PLATE", "粤B·D12345"), ("CN_LICENSE_PLATE", "京A12345")],
        ),
        ("SSN 123-45-6789", [("US_SSN", "123-45-6789")]),
        ("IBAN DE89 3704 0044 0532 0130 00", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
        ("GB82WEST12345698765432", [("IBAN", "GB82WEST12345698765432")]),
        # Found by the generated corpus (tests/privacy/corpus.py):
        ("Tel +86 10 6234 5678 ext", [("CN_LANDLINE", "+86 10 6234 5678")]),
        ("Amex 3782 822463 10005.", [("BANK_CARD", "3782 822463 10005")]),
        ("VISA 4111 1111 1111 1111", [("BANK_CARD", "4111 1111 1111 1111")]),
        ("邮箱ｚｓ＠ｃｏｒｐ．ｃｎ谢谢", [("EMAIL", "ｚｓ＠ｃｏｒｐ．ｃｎ")]),
        ("车牌京Ａ１２３４５", [("CN_LICENSE_PLATE", "京Ａ１２３４５")]),
        ("peer:fdab:cdef::1 ok", [("IP_ADDRESS", "fdab:cdef::1")]),
        ("税号914403052673368300。", [("CN_USCC", "914403052673368300")]),  # passes Luhn too
    ],
)
def test_each_type_is_found_with_its_exact_offsets(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "订单号202311140001234567已发货",  # 18 digits, not a valid ID
        "身份证11010519491231002Y",  # wrong check character
        "身份证110105199902300021",  # 30 February
        "号码12812345678",  # no 128 mobile segment
        "卡号6222 0212 3456 7893",  # fails Luhn (and is no landline inside)
        "serial 16813812345678901",  # a phone inside a longer run of digits
        "abc13812345678 and 13812345678x",  # inside runs of letters
        "版本1.2.3.4.5 和 v10.0.0.256",  # version strings, an invalid octet
        "SSN 666-12-3456 or 123-00-4567",  # area 666, group 00
        "IBAN DE89 3704 0044 0532 0130 01",  # mod 97 fails
        "信用代码91350100M000100Y44",  # wrong check character
        "temperature 38.5 and 2024-05-06 and pi 3.14159",
        "订单号2024051612345679",  # passes Luhn, but no card network issues 20xx
        "序列号 GB51 MLAS 3392 4820 7638 62已过期",  # a card-like tail of a bad IBAN
        "+86 154 2345 6789",  # no mobile segment 154, no area code 0154
        "1:2:3:4:5:6:7:8:9",  # nine groups: a piece of it is no address
        "ref:１９４．２４０．３９．１００．２１０",  # a full-width version string
    ],
)
def test_hard_negatives_are_not_taken(text: str) -> None:
    assert found(text) == []


def test_several_values_in_mixed_text_keep_original_offsets() -> None:
    text = "客户张三（电话：１３９ １２３４ ５６７８，邮箱 zs@corp.cn）IP 10.0.0.8。"
    assert found(text) == [
        ("CN_PHONE", "１３９ １２３４ ５６７８"),
        ("EMAIL", "zs@corp.cn"),
        ("IP_ADDRESS", "10.0.0.8"),
    ]
    assert all(len(fold(text[f.start : f.end])) == f.end - f.start for f in detect(text))


def test_validators() -> None:
    assert luhn("79927398713") and not luhn("79927398710")
    assert bank_card("6222021234567894") and not bank_card("1222021234567894")
    assert resident_id("11010519491231002X") and not resident_id("110105194912310021")
    assert uscc("91350100M000100Y43")
    assert iban("GB82WEST12345698765432") and not iban("XX82WEST12345698765432")
    assert {"CUSTOM", "PERSON", "ADDRESS", "US_PHONE"} <= set(TYPES) and len(TYPES) == 15
