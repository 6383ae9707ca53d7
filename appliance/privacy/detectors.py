"""Finding personal data in Chinese and English text: match, then validate.

One scan of the text finds *candidates*: runs that start with a digit (or a few letters and
then a digit) and go on through digits, letters and the separators numbers are written with.
Most text has few of them, so the per-type patterns and their validators (check digits,
dates, number plans, in ``validators``) run only on those short windows, with full-width
forms folded to ASCII (same length, so offsets still point into the original text). Email
addresses are found from their ``@``, licence plates from their province character.

A value is never taken from the middle of a longer run of digits or letters: the characters
just outside a match must not be ASCII (or full-width) digits or letters. Chinese characters
next to a value do not count, so ``电话13812345678`` is found.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from appliance.privacy import validators as v

# The fixed vocabulary of finding types (the CLI, the policy and the audit use these names).
TYPES = (
    "CN_RESIDENT_ID",
    "CN_PHONE",
    "CN_LANDLINE",
    "BANK_CARD",
    "EMAIL",
    "IP_ADDRESS",
    "CN_PASSPORT",
    "CN_USCC",
    "CN_LICENSE_PLATE",
    "US_SSN",
    "IBAN",
    "CUSTOM",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """``text[start:end]`` is a value of ``type`` (code point offsets, ``end`` exclusive)."""

    start: int
    end: int
    type: str
    score: float = 1.0


# Full-width digits, letters and punctuation fold to ASCII one code point for one.
FOLD = str.maketrans(
    {
        **{chr(0xFF10 + i): chr(0x30 + i) for i in range(10)},
        **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)},
        **{chr(0xFF41 + i): chr(0x61 + i) for i in range(26)},
        "\uff0d": "-",
        "\uff0b": "+",
        "\uff08": "(",
        "\uff09": ")",
        "\uff1a": ":",
        "\uff0e": ".",
        "\uff20": "@",
        "\u3000": " ",
    }
)
_D = "0-9\uff10-\uff19"
_L = "A-Za-z\uff21-\uff3a\uff41-\uff5a"
_SEP = "\\- .:()\uff0d\uff0e\uff1a\uff08\uff09\u3000"
CANDIDATE = re.compile(
    rf"[+\uff0b(\uff08]*[{_L}]{{0,4}}[{_D}](?:[{_D}{_L}]|[{_SEP}]+(?=[{_D}{_L}(\uff08]))*"
)
_ALNUM = re.compile(rf"[{_D}{_L}]")
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE = re.compile(
    rf"[{PROVINCES}][A-HJ-NP-Z][·• ]?"
    r"(?:[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF]|[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警港澳])"
)
EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}$")
EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}")

Rule = tuple[str, "re.Pattern[str]", Callable[["re.Match[str]"], bool]]


def _digits(match: re.Match[str]) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", match.group(0))


RULES: tuple[Rule, ...] = (
    ("CN_RESIDENT_ID", re.compile(r"[0-9]{17}[0-9Xx]|[0-9]{15}"), lambda m: v.resident_id(m[0])),
    (
        "CN_USCC",
        re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}"),
        lambda m: v.uscc(m[0]),
    ),
    (
        "BANK_CARD",
        re.compile(r"[0-9]{4}(?:[ \-][0-9]{4}){2,3}(?:[ \-][0-9]{1,3})?|[0-9]{12,19}"),
        lambda m: v.bank_card(_digits(m)),
    ),
    (
        "IBAN",
        re.compile(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"),
        lambda m: v.iban(_digits(m)),
    ),
    (
        "CN_PHONE",
        re.compile(r"(?:(?:\+|00)?86[ \-]?)?(1[0-9]{2})[ \-]?([0-9]{4})[ \-]?([0-9]{4})"),
        lambda m: v.mobile(m[1] + m[2] + m[3]),
    ),
    (
        "CN_LANDLINE",
        re.compile(
            r"(?:(?:\+|00)?86[ \-]?)?(?:\((0[0-9]{2,3})\) ?|(0[0-9]{2,3})[ \-])"
            r"([0-9]{3,4})[ \-]?([0-9]{4})"
        ),
        lambda m: v.landline(m[1] or m[2], m[3] + m[4]),
    ),
    (
        "US_SSN",
        re.compile(r"([0-9]{3})[\- ]([0-9]{2})[\- ]([0-9]{4})"),
        lambda m: v.us_ssn(m[1], m[2], m[3]),
    ),
    ("IP_ADDRESS", re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"), lambda m: v.ipv4(m[0])),
    (
        "IP_ADDRESS",
        re.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9.]+)?"),
        lambda m: v.ipv6(m[0]),
    ),
    ("CN_PASSPORT", re.compile(r"E[A-HJ-NP-Z][0-9]{7}|[EGDSPH][0-9]{8}"), lambda _m: True),
)
# A tie between two types on the same span goes to the earlier (more specific) one.
PRIORITY = {name: i for i, name in enumerate(TYPES)}


def detect(text: str, custom: Iterable[Finding] | None = None) -> list[Finding]:
    """Every validated value in ``text`` (and ``custom`` findings), without overlaps, in order."""
    found = list(_in_candidates(text))
    found += _plates(text)
    found += _emails(text)
    if custom is not None:
        found += custom
    return _without_overlaps(found)


def bounded_word(text: str, start: int, end: int) -> bool:
    """A term written in ASCII letters or digits at an end must not continue a longer word."""
    if start > 0 and _ALNUM.match(text, start) and _ALNUM.match(text, start - 1):
        return False
    return not (end < len(text) and _ALNUM.match(text, end - 1) and _ALNUM.match(text, end))


def fold(text: str) -> str:
    """Full-width digits, letters and separators as ASCII, one code point for one."""
    return text.translate(FOLD)


def _in_candidates(text: str) -> Iterator[Finding]:
    for candidate in CANDIDATE.finditer(text):
        begin = candidate.start()
        window = fold(candidate.group(0))
        for name, pattern, valid in RULES:
            for match in pattern.finditer(window):
                start, end = begin + match.start(), begin + match.end()
                if _bounded(text, start, end, name) and valid(match):
                    yield Finding(start, end, name)


def _bounded(text: str, start: int, end: int, name: str) -> bool:
    """Not part of a longer run of digits or letters (nor a longer dotted number)."""
    if start > 0 and _ALNUM.match(text, start - 1):
        return False
    if end < len(text) and _ALNUM.match(text, end):
        return False
    if _continues_a_grouped_number(text, start, end):
        return False
    if name == "IP_ADDRESS":  # a version string such as 1.2.3.4.5 is not an address
        before = text[start - 2 : start] if start >= 2 else ""
        after = text[end : end + 2]
        if (before[-1:] == "." and before[:1].isdigit()) or (
            after[:1] == "." and after[1:].isdigit()
        ):
            return False
    return True


def _continues_a_grouped_number(text: str, start: int, end: int) -> bool:
    """``0212 3456 7893`` in ``6222 0212 3456 7893``: a match written in groups is part of a
    longer grouped number when the same separator and a digit continue it on either side."""
    inner = text[start:end].translate(FOLD)
    for sep in " -":
        if sep not in inner.strip("+( "):
            continue
        before = text[start - 2 : start].translate(FOLD) if start >= 2 else ""
        after = text[end : end + 2].translate(FOLD)
        if (before[1:] == sep and before[:1].isdigit()) or (
            after[:1] == sep and after[1:].isdigit()
        ):
            return True
    return False


def _plates(text: str) -> Iterator[Finding]:
    for match in PLATE.finditer(text):
        if match.end() >= len(text) or not _ALNUM.match(text, match.end()):
            yield Finding(match.start(), match.end(), "CN_LICENSE_PLATE")


def _emails(text: str) -> Iterator[Finding]:
    at = text.find("@")
    while at != -1:
        local = EMAIL_LOCAL.search(text, max(0, at - 64), at)
        domain = EMAIL_DOMAIN.match(text, at + 1)
        if local and domain and not local.group(0).startswith("."):
            yield Finding(local.start(), domain.end(), "EMAIL")
        at = text.find("@", at + 1)


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    """Longest first, then the more specific type; a finding overlapping a kept one is dropped."""
    kept: list[Finding] = []  # sorted by start, never overlapping
    for f in sorted(found, key=lambda f: (f.start - f.end, PRIORITY[f.type], f.start)):
        i = bisect.bisect_left(kept, f.start, key=lambda k: k.start)
        if (i == 0 or kept[i - 1].end <= f.start) and (i == len(kept) or f.end <= kept[i].start):
            kept.insert(i, f)
    return kept
