"""Check digits and format validators, written from the public standards.

Independent of appliance/privacy: these follow GB 11643 (resident ID), GB 32100 and
GB 11714 (unified social credit code), ISO/IEC 7812 Luhn (bank cards), ISO 13616
(IBAN), the NANP numbering rules (US phones), the SSA rules for SSNs, and the plate
format of GA 36. `validate(type, written)` is what the self-test applies to every
label after normalising the written value (spaces, dots, dashes and zero-width
characters removed, full-width characters mapped to ASCII).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_FULL_TO_ASCII = {chr(0xFF01 + i): chr(0x21 + i) for i in range(94)}
_FULL_TO_ASCII["\u3000"] = " "


def to_ascii(text: str) -> str:
    """Full-width forms to ASCII and zero-width characters removed."""
    out = []
    for ch in text:
        if ch in ZERO_WIDTH:
            continue
        out.append(_FULL_TO_ASCII.get(ch, ch))
    return "".join(out)


def compact(text: str) -> str:
    """to_ascii, then separators (spaces, dots, dashes, middle dots, brackets) removed."""
    return re.sub(r"[\s.\-·•()（）]", "", to_ascii(text))


# --- GB 11643-1999: citizen identity number --------------------------------------------

ID_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
ID_CHECK = "10X98765432"
PROVINCE_CODES = frozenset(
    [
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    ]
)


def id_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def is_resident_id(written: str) -> bool:
    v = compact(written).upper()
    if not re.fullmatch(r"\d{17}[\dX]", v) or v[:2] not in PROVINCE_CODES:
        return False
    try:
        born = _dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    if not _dt.date(1900, 1, 1) <= born <= _dt.date(2030, 12, 31):
        return False
    return id_check_char(v[:17]) == v[17]


# --- Luhn (ISO/IEC 7812) ---------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(body: str) -> str:
    """body + the Luhn check digit."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


def is_bank_card(written: str) -> bool:
    v = compact(written)
    return bool(re.fullmatch(r"\d{16,19}", v)) and luhn_ok(v)


# --- GB 32100-2015 unified social credit code, GB 11714 organisation code -----------

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [3**i % 31 for i in range(17)]  # 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
USCC_KINDS = {"1": "123", "5": "123", "9": "123", "Y": "1"}


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def org_check_char(first8: str) -> str:
    total = sum(int(c, 36) * w for c, w in zip(first8, ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def uscc_checksum_ok(v: str) -> bool:
    return len(v) == 18 and all(c in USCC_CHARS for c in v) and uscc_check_char(v[:17]) == v[17]


def is_uscc(written: str) -> bool:
    v = compact(written).upper()
    if not uscc_checksum_ok(v):
        return False
    if v[1] not in USCC_KINDS.get(v[0], "") or not v[2:8].isdigit() or v[2:4] not in PROVINCE_CODES:
        return False
    return org_check_char(v[8:16]) == v[16]


# --- ISO 13616 IBAN ---------------------------------------------------------------------

IBAN_LENGTHS = {
    "DE": 22,
    "GB": 22,
    "FR": 27,
    "NL": 18,
    "ES": 24,
    "IT": 27,
    "CH": 21,
    "BE": 16,
    "AT": 20,
    "IE": 22,
    "PL": 28,
    "SE": 24,
    "DK": 18,
    "NO": 15,
    "FI": 18,
    "PT": 25,
    "LU": 20,
    "SA": 24,
    "AE": 23,
}


def iban_mod97(rearranged: str) -> int:
    num = "".join(str(int(c, 36)) for c in rearranged)
    return int(num) % 97


def is_iban(written: str) -> bool:
    v = re.sub(r"\s", "", to_ascii(written)).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", v):
        return False
    if IBAN_LENGTHS.get(v[:2]) != len(v):
        return False
    return iban_mod97(v[4:] + v[:4]) == 1


# --- Phones -----------------------------------------------------------------------------


def _strip_cc(v: str, cc: str) -> str:
    for p in ("+" + cc, "00" + cc):
        if v.startswith(p):
            return v[len(p) :]
    return v


def is_cn_mobile(written: str) -> bool:
    """Mainland mobile: 11 digits starting with 1, optional +86 / 0086 / 86 prefix.

    The second digit is not checked: an explicitly labelled number with an
    unallocated prefix (100, 120, ...) is still a CN_PHONE label.
    """
    v = _strip_cc(compact(written), "86")
    if len(v) == 13 and v.startswith("86"):
        v = v[2:]
    return bool(re.fullmatch(r"1\d{10}", v))


def is_cn_landline(written: str) -> bool:
    v = compact(written)
    stripped = _strip_cc(v, "86")
    if stripped != v:
        v = "0" + stripped
    return bool(
        re.fullmatch(r"0(?:10|2\d)[1-9]\d{7}", v) or re.fullmatch(r"0[3-9]\d{2}[1-9]\d{6,7}", v)
    )


def is_us_phone(written: str) -> bool:
    v = compact(written)
    if v.startswith("+1"):
        v = v[2:]
    elif len(v) == 11 and v.startswith("1"):
        v = v[1:]
    # NANP: the area code starts with 2-9 and is not N11. The exchange is not checked
    # (the well-known example (555) 123-4567 has an exchange starting with 1).
    return bool(re.fullmatch(r"[2-9]\d{2}\d{7}", v)) and v[1:3] != "11"


def is_ssn(written: str) -> bool:
    v = compact(written)
    if not re.fullmatch(r"\d{9}", v):
        return False
    area, group, serial = v[:3], v[3:5], v[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# --- Passport, plate --------------------------------------------------------------------


def is_cn_passport(written: str) -> bool:
    v = compact(written).upper()
    return bool(re.fullmatch(r"[EG]\d{8}|E[A-HJ-NP-Z]\d{7}", v))


PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PL = "A-HJ-NP-Z"
PLATE_RE = re.compile(
    rf"[{PLATE_PROVINCES}][{_PL}](?:[{_PL}0-9]{{5}}|[DF][{_PL}0-9]\d{{4}}|\d{{5}}[DF])"
)


def is_plate(written: str) -> bool:
    v = compact(written).upper()
    if not PLATE_RE.fullmatch(v):
        return False
    tail = v[2:]
    # Ordinary plates carry at most two letters in the last five; new-energy ones one.
    return sum(c.isalpha() for c in tail) <= 2


# --- Email, IP --------------------------------------------------------------------------

EMAIL_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "edu",
        "gov",
        "cn",
        "io",
        "co",
        "uk",
        "de",
        "fr",
        "jp",
        "us",
        "biz",
        "info",
        "me",
        "hk",
        "tw",
        "sg",
        "ca",
        "au",
        "in",
        "app",
        "dev",
        "tech",
        "ai",
        "cc",
        "tv",
        "xyz",
        "top",
        "mil",
        "int",
    ]
)
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]*[A-Za-z0-9])?@(?:[A-Za-z0-9\-]+\.)+([A-Za-z]{2,})"
)


def is_email(written: str) -> bool:
    m = _EMAIL_RE.fullmatch(written)
    if not m or ".." in written:
        return False
    return m.group(1).lower() in EMAIL_TLDS


def is_ip(written: str) -> bool:
    try:
        addr = ipaddress.ip_address(written)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv4Address):
        # Leading zeros are rejected by ipaddress already; require the dotted form.
        return written.count(".") == 3
    return True


# --- PERSON, ADDRESS ------------------------------------------------------------------

COMPOUND_SURNAMES = [
    "欧阳",
    "司马",
    "诸葛",
    "上官",
    "东方",
    "慕容",
    "夏侯",
    "皇甫",
    "令狐",
    "尉迟",
    "公孙",
    "长孙",
    "宇文",
    "司徒",
    "西门",
    "独孤",
    "端木",
]
COMMON_SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)


def _faker_surnames() -> frozenset[str]:
    try:
        from faker.providers.person.zh_CN import Provider
    except ImportError:  # pragma: no cover - faker is a test dependency
        return frozenset()
    return frozenset(Provider.last_names)


SURNAMES = frozenset(COMMON_SURNAMES) | frozenset(COMPOUND_SURNAMES) | _faker_surnames()
TITLES_ZH = ("先生", "女士", "小姐", "医生", "经理", "老师", "主任", "同学", "师傅", "总", "护士")
TITLES_EN = ("Dr", "Mr", "Mrs", "Ms", "Miss", "Prof", "Sir")


def is_person(written: str) -> bool:
    if re.fullmatch(r"[\u4e00-\u9fff]{2,4}", written):
        if any(written.endswith(t) for t in TITLES_ZH):
            return False
        return written[:2] in SURNAMES or written[:1] in SURNAMES
    tokens = written.split(" ")
    if tokens[0].rstrip(".") in TITLES_EN:
        return False
    word = r"[A-Z](?:[a-z]+|[A-Z]+)(?:['\-][A-Z][a-z]+)?|[A-Z]\."
    return (
        2 <= len(tokens) <= 4
        and all(re.fullmatch(word, t) for t in tokens)
        and not all(t.endswith(".") for t in tokens)
    )


_ZH_ADDR_UNITS = "省市区县镇乡村路街道巷弄号幢栋单元楼层室座组大厦广场小区苑园"
_ZH_ADDR_TAIL = ("号", "室", "幢", "栋", "单元", "楼", "层", "组", "座", "弄", "户", "号院")


def is_address(written: str) -> bool:
    if re.search(r"[\u4e00-\u9fff]", written):
        if not re.fullmatch(r"[\u4e00-\u9fffA-Za-z0-9\-]+", written):
            return False
        if not any(u in written for u in _ZH_ADDR_UNITS) or not re.search(r"\d", written):
            return False
        return written.endswith(_ZH_ADDR_TAIL) or written[-1].isdigit()
    return bool(
        re.fullmatch(
            r"\d{1,6}[A-Z]? [A-Za-z0-9 .'#\-]+(?:, ?[A-Za-z0-9 .'#\-]+)*"
            r"(?:,? [A-Z]{2} \d{5}(?:-\d{4})?)?",
            written,
        )
    )


VALIDATORS = {
    "CN_RESIDENT_ID": is_resident_id,
    "CN_PHONE": is_cn_mobile,
    "CN_LANDLINE": is_cn_landline,
    "BANK_CARD": is_bank_card,
    "EMAIL": is_email,
    "IP_ADDRESS": is_ip,
    "CN_PASSPORT": is_cn_passport,
    "CN_USCC": is_uscc,
    "CN_LICENSE_PLATE": is_plate,
    "US_SSN": is_ssn,
    "IBAN": is_iban,
    "PERSON": is_person,
    "ADDRESS": is_address,
    "US_PHONE": is_us_phone,
}
TYPES = tuple(VALIDATORS)


def validate(type_: str, written: str) -> bool:
    return VALIDATORS[type_](written)
