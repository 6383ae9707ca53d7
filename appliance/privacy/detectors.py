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
import operator
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
    "PERSON",
    "ADDRESS",
    "US_PHONE",
)
# Names and postal addresses: found by ``entities`` (lexicons, administrative divisions and
# context), not by a pattern and a check digit.
ENTITY_TYPES = frozenset({"PERSON", "ADDRESS"})


@dataclass(frozen=True, slots=True)
class Finding:
    """``text[start:end]`` is a value of ``type`` (code point offsets, ``end`` exclusive)."""

    start: int
    end: int
    type: str
    score: float = 1.0


# Findings in the order of the text: by start, then end.
BY_SPAN = operator.attrgetter("start", "end")


# Full-width forms (U+FF01-FF5E, and the ideographic space) fold to ASCII one code point for one.
# Zero-width characters (pasted from chat apps and web pages, or put there on purpose to slip
# a value past a filter) fold to a space, which every spaced form of a value accepts.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
FOLD = str.maketrans(
    {chr(0xFF01 + i): chr(0x21 + i) for i in range(0x5E)}
    | {"\u3000": " "}
    | dict.fromkeys(ZERO_WIDTH, " ")
)
# ASCII and full-width digits, as a regex character class (the context rules use it too).
DIGIT_CLASS = _D = "0-9\uff10-\uff19"
_L = "A-Za-z\uff21-\uff3a\uff41-\uff5a"
_SEP = "\\- .:()\uff0d\uff0e\uff1a\uff08\uff09\u3000" + ZERO_WIDTH
# What a value may start with before its first digit: letters (``GB82``, ``EA123``), hex
# groups and colons (IPv6's ``fdab:cdef::1``), ``+86``, ``(0755)``.
_BACK = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:+(\uff1a\uff0b\uff08"
    + "".join(chr(c) for c in range(0xFF21, 0xFF3B))
    + "".join(chr(c) for c in range(0xFF41, 0xFF5B))
)
_LETTER_SET = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    + "".join(chr(c) for c in (*range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)))
)
_HEX_OR_COLON = frozenset(
    "0123456789ABCDEFabcdef:\uff1a"
    + "".join(
        chr(c) for c in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF27), *range(0xFF41, 0xFF47))
    )
)
_BACK_MAX = 40
_SHORTEST = 7  # no value of a candidate type is shorter (1.2.3.4, fe80::1)
# A candidate starts at a digit (so the scan skips everything else in C) and goes on through
# digits and letters, and across separators to a next token that has a digit, or is a group
# of capitals (an IBAN's ``WEST``) or, after a colon, of hex digits (an IPv6 group): a number
# followed by English words stops at the words. One too short to hold a value (``2024年``,
# ``12.5%``) is dropped in the scan: it must have _SHORTEST value characters ahead, or
# something to walk back over before it.
_BACK_CLASS = "A-Za-z:+(\uff1a\uff0b\uff08\uff21-\uff3a\uff41-\uff5a"
_HEX_CLASS = "0-9A-Fa-f\uff10-\uff19\uff21-\uff26\uff41-\uff46"
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Plate letters (no I or O) and digits, ASCII or full-width.
_PL = "A-HJ-NP-Z\uff21-\uff28\uff2a-\uff2e\uff30-\uff3a"
_PD = _D
_PLATE_REST = (
    rf"[{_PL}][·• \u3000\-\uff0d]?"
    rf"(?:[DF\uff24\uff26][{_PL}{_PD}][{_PD}]{{4}}|[{_PD}]{{5}}[DF\uff24\uff26]"
    rf"|[{_PL}{_PD}]{{4}}[{_PL}{_PD}挂学警港澳])"
    rf"(?![{_D}{_L}])"
)
PLATE = re.compile(rf"[{PROVINCES}]{_PLATE_REST}")
_PROVINCE_SET = frozenset(PROVINCES)
_NUMBER_REST = (
    rf"(?:(?<=[{_BACK_CLASS}][{_D}])|(?=[{_D}{_L}{_SEP}]{{{_SHORTEST - 1}}}))[{_D}{_L}]*"
    rf"(?:[{_SEP}]+(?:[{_D}{_L}]*[{_D}][{_D}{_L}]*|[A-Z\uff21-\uff3a]{{1,4}}(?![{_D}{_L}])"
    rf"|(?<=[:\uff1a])[{_HEX_CLASS}]{{1,4}}(?![{_D}{_L}])))*"
    rf"(?:(?<=[{_HEX_CLASS}])[:\uff1a]{{2}}(?![{_D}{_L}:\uff1a]))?"  # an IPv6 ending in ::
)
# One scan finds both: licence plates from their province character, numbers from a digit.
# (Both branches after one character class, so the scan still skips other text in C.)
CANDIDATE = re.compile(
    rf"[{_D}{PROVINCES}](?:(?<=[{PROVINCES}]){_PLATE_REST}|(?<=[{_D}]){_NUMBER_REST})"
)
_ALNUM = re.compile(rf"[{_D}{_L}]")
_ALNUM_SET = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    + "".join(
        chr(c) for c in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))
    )
)
_DIGIT_SET = frozenset("0123456789" + "".join(chr(c) for c in range(0xFF10, 0xFF1A)))
_GROUP_SEPS = frozenset(" -\u3000\uff0d")
_CAPITAL_OR_DIGIT = re.compile(r"[0-9A-Z\uff10-\uff19\uff21-\uff3a]")
_HEX = frozenset("0123456789ABCDEFabcdef")
_EMAIL_LOCAL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"
)
EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}")

# name, pattern (on the folded candidate), validator, shortest match, a character it needs.
Rule = tuple[str, "re.Pattern[str]", Callable[["re.Match[str]"], bool], int, str]


def _digits(match: re.Match[str]) -> str:
    return match.group(0).replace(" ", "").replace("-", "")


# A landline written as one run of digits with its area code (02162345678, 075588886666):
# 010 and 02x take three digits, every other area code four.
_LANDLINE_RUN = re.compile(r"(0(?:10|2[0-9]))([2-9][0-9]{7})|(0[3-9][0-9]{2})([2-9][0-9]{6,7})")
RULES: tuple[Rule, ...] = (
    (
        "CN_RESIDENT_ID",
        re.compile(r"[0-9]{17}[0-9Xx]|[0-9]{15}"),
        lambda m: v.resident_id(m[0]),
        15,
        "",
    ),
    (
        "CN_USCC",
        re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}"),
        lambda m: v.uscc(m[0]),
        18,
        "",
    ),
    (
        "BANK_CARD",
        re.compile(
            r"[0-9]{4}(?:[ \-][0-9]{4}){2,3}(?:[ \-][0-9]{1,3})?|[0-9]{12,19}"
            r"|3[47][0-9]{2}[ \-][0-9]{6}[ \-][0-9]{5}"  # American Express: 4-6-5
        ),
        lambda m: v.bank_card(_digits(m)),
        12,
        "",
    ),
    (
        "IBAN",
        re.compile(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"),
        lambda m: v.iban(_digits(m)),
        15,
        "",
    ),
    (
        "CN_PHONE",
        re.compile(r"(?:(?:\+|00)?86[ \-]?)?(1[0-9]{2})[ \-]?([0-9]{4})[ \-]?([0-9]{4})"),
        lambda m: v.mobile(m[1] + m[2] + m[3]),
        11,
        "",
    ),
    (
        "CN_LANDLINE",
        re.compile(
            r"(?:(?:\+|00)?86[ \-]?)?(?:\((0[0-9]{2,3})\) ?|(0[0-9]{2,3})[ \-])"
            r"([0-9]{3,4})[ \-]?([0-9]{4})(?:-[0-9]{1,5})?"  # and an extension: -8001
        ),
        lambda m: v.landline(m[1] or m[2], m[3] + m[4]),
        11,
        "",
    ),
    (  # one run of digits with the area code: 02162345678, 075588886666
        "CN_LANDLINE",
        _LANDLINE_RUN,
        lambda m: v.landline(m[1] or m[3], m[2] or m[4]),
        10,
        "",
    ),
    (  # the international form drops the trunk 0: +86 10 6234 5678, +86-755-88886666
        "CN_LANDLINE",
        re.compile(r"(?:\+|00)86[ \-]?([1-9][0-9]{1,2})[ \-]([0-9]{3,4})[ \-]?([0-9]{4})"),
        lambda m: v.landline("0" + m[1], m[2] + m[3]),
        13,
        "",
    ),
    (
        "US_SSN",
        re.compile(r"([0-9]{3})[\- ]([0-9]{2})[\- ]([0-9]{4})"),
        lambda m: v.us_ssn(m[1], m[2], m[3]),
        11,
        "",
    ),
    ("IP_ADDRESS", re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"), lambda m: v.ipv4(m[0]), 7, "."),
    (
        "IP_ADDRESS",
        re.compile(
            r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{1,4}|(?=::))(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9.]+)?"
        ),
        lambda m: v.ipv6(m[0]),
        7,
        ":",
    ),
    (
        "CN_PASSPORT",
        re.compile(r"E[A-HJ-NP-Z][0-9]{7}|[EGDSPH][0-9]{8}"),
        lambda _m: True,
        9,
        "",
    ),
)
# A tie between two types on the same span goes to the more specific one: the one whose
# check a random string passes least often (an 18-digit all-digit credit code that also
# passes Luhn is a credit code: 1 in 31 against 1 in 10; 86 and an allocated mobile is a
# phone written with its country code, not a 13-digit card).
PRIORITY = {
    name: i
    for i, name in enumerate(
        (
            "CN_RESIDENT_ID",
            "CN_USCC",
            "IBAN",
            "CN_PHONE",
            "BANK_CARD",
            "CN_LANDLINE",
            "US_SSN",
            "IP_ADDRESS",
            "CN_PASSPORT",
            "EMAIL",
            "CN_LICENSE_PLATE",
            "US_PHONE",
            "CUSTOM",
            "ADDRESS",
            "PERSON",
        )
    )
}
# Rules in that order: where several match all of a candidate, the first valid one wins.
_BY_PRIORITY = sorted(RULES, key=lambda rule: PRIORITY[rule[0]])


def _alternation(rules: Iterable[tuple[int, Rule]]) -> re.Pattern[str]:
    """The rules' patterns as one alternation, in order, each in a group named for its
    index: on a whole candidate, ``fullmatch`` says which is the first to match all of it."""
    return re.compile("|".join(f"(?P<r{i}>{rule[1].pattern})" for i, rule in rules))


# _FULL_FROM[k]: the rules from the k-th (in priority order) on, one C call for what was one
# ``fullmatch`` a rule; _RULE_AT maps its group back to the rule.
_FULL_FROM = tuple(
    _alternation(list(enumerate(_BY_PRIORITY))[k:]) for k in range(len(_BY_PRIORITY))
)
_RULE_AT = {f"r{i}": i for i in range(len(_BY_PRIORITY))}
# A whole candidate that is a date, a date and a time, or a time (2024-03-12, 2024-03-12
# 14:16:00.773, 14:16:00) holds no value of any rule: its runs of digits are at most four
# long and apart, no rule's separators join them into one (no grouped card, phone, ID or
# SSN has a 4-2-2 shape), and the IPv6 rule's match in its time (14:16:00) has two colons
# and no ``::``, which is no address. So it is passed over before any rule runs.
_DATE_TIME = re.compile(
    r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
    r"|[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?)"
)
# A candidate that is one run of digits and letters holds a value only as a whole: the
# rules that can match such a run, by its length.
_Whole = dict[int, list[tuple[str, "re.Pattern[str]", Callable[["re.Match[str]"], bool]]]]
_WHOLE: _Whole = {
    size: [
        (name, pattern, valid)
        for name, pattern, valid, _s, _n in _BY_PRIORITY
        if (name, size)
        in {
            ("CN_RESIDENT_ID", 15),
            ("CN_RESIDENT_ID", 18),
            ("CN_USCC", 18),
            ("CN_PHONE", 11),
            ("CN_PHONE", 13),
            ("CN_PHONE", 15),
            ("CN_PASSPORT", 9),
        }
        or (name == "BANK_CARD" and 12 <= size <= 19)
        or (name == "IBAN" and 15 <= size <= 34)
    ]
    for size in range(_SHORTEST, 35)
}


# Eleven digits shaped like a mobile whose prefix is not allocated today (100, 120...): a
# weak finding that only a label (手机号, 联系电话, call me at) lifts over ``min_score``.
_MOBILE_SHAPE = re.compile(r"1[0-9]{10}")
WEAK = 0.3
# Separators a value may be written with inside it (138.1589.2906, 110105 19491231 002X,
# zero-width characters): removed, the rest must be the whole value.
_COMPACT_DROP = str.maketrans(dict.fromkeys(" .-+()", None))
# Digits glued to letters (Tel13807885261, IDcard32082619900307123X): a letter ends a run
# of digits. Letters that could be hex digits (a hash, a UUID) are not taken apart.
_GLUED = re.compile(r"([A-Za-z]*[G-Zg-z][A-Za-z]*)([0-9]{9,19}[Xx]?)(?![0-9])")
# File names are not email addresses (logo@2x.png).
_FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "tif",
        "tiff",
        "js",
        "css",
        "html",
        "htm",
        "pdf",
        "txt",
        "json",
        "xml",
        "md",
    ]
)


def detect(
    text: str,
    custom: Iterable[Finding] | None = None,
    *,
    weak: bool = False,
) -> list[Finding]:
    """Every validated value in ``text`` (and ``custom`` findings), without overlaps, in order.
    With ``weak``, also values only shaped like one (score ``WEAK``) that a label may lift.
    ``findings.find`` adds US phones, names and addresses (``entities``)."""
    found = _in_candidates(text)
    if not weak:
        found = [f for f in found if f.score > WEAK]
    if "@" in text or "\uff20" in text:
        found += _emails(text)
    if custom is not None:
        found += custom
    return without_overlaps(found)


def bounded_word(text: str, start: int, end: int) -> bool:
    """A term written in ASCII letters or digits at an end must not continue a longer word."""
    if start > 0 and _ALNUM.match(text, start) and _ALNUM.match(text, start - 1):
        return False
    return not (end < len(text) and _ALNUM.match(text, end - 1) and _ALNUM.match(text, end))


def fold(text: str) -> str:
    """Full-width digits, letters and separators as ASCII, one code point for one."""
    return text.translate(FOLD)


def _in_candidates(text: str) -> list[Finding]:
    back, by_priority, whole, provinces = _BACK, _BY_PRIORITY, _WHOLE, _PROVINCE_SET
    full_from, rule_at, alnum = _FULL_FROM, _RULE_AT, _ALNUM_SET
    out: list[Finding] = []
    for candidate in CANDIDATE.finditer(text):
        begin, end = candidate.span()
        if text[begin] in provinces:
            out.append(Finding(begin, end, "CN_LICENSE_PLATE"))
            continue
        if begin and text[begin - 1] in back:
            begin = _value_start(text, begin)
        size = end - begin
        if size < _SHORTEST:
            continue
        window = text[begin:end]
        if not window.isascii():
            window = window.translate(FOLD)
        if window.isalnum():  # one run: a value is all of it (the scan took the whole run)
            if begin and text[begin - 1] in alnum:
                continue
            found = _whole_run(window, begin, whole)
            if found is None and not window.isdigit():
                found = _glued(window, begin, whole)
            if found is not None:
                out.append(found)
            continue
        if _DATE_TIME.fullmatch(window):
            continue  # a date or a time of day, the most common candidate in logs: no value
        # Most candidates with separators are one value (+86 138 1234 5678, 10.0.0.8): one
        # that is all of the candidate outlasts anything inside it, so look no further.
        # The rules in priority order, the first valid one that matches all of it wins: one
        # alternation of the rules from ``k`` on says which is the next to match at all.
        taken = None
        k, n = 0, len(by_priority)
        while k < n:
            first = full_from[k].fullmatch(window)
            if first is None:
                break
            k = rule_at[first.lastgroup]  # type: ignore[index]
            name, pattern, valid, shortest, needs = by_priority[k]
            k += 1
            if size < shortest or (needs and needs not in window):
                continue
            match = pattern.fullmatch(window)
            if match and valid(match) and _bounded(text, begin, end, name):
                taken = Finding(begin, end, name)
                break
        if taken is not None:
            out.append(taken)
            continue
        found = _spaced(text, begin, end, window, whole)
        if found is not None:
            out.append(found)
        else:
            out += _inside(text, begin, window)
    return out


def _glued(window: str, begin: int, whole: _Whole) -> Finding | None:
    """A resident ID, a mobile or a card number written right after (or before) letters."""
    for glued in _GLUED.finditer(window):
        if glued[1].lower() in SERIAL_PREFIXES:
            continue
        digits, at = glued[2], begin + glued.start(2)
        for run in (digits, digits[:-1]) if digits[-1] in "Xx" else (digits,):
            found = _whole_run(run, at, whole)
            if (
                found is not None
                and found.type in _GLUED_TYPES
                and (found.type != "BANK_CARD" or glued[1].lower() in _CARD_LABELS)
            ):
                return found
    return None


# Letters that make the run a serial, key or reference rather than label a value after them.
SERIAL_PREFIXES = frozenset(
    [
        "sn",
        "key",
        "ref",
        "no",
        "nr",
        "order",
        "orderno",
        "sku",
        "txn",
        "inv",
        "invoice",
        "waybill",
        "tracking",
        "batch",
        "lot",
        "sf",
        "zto",
        "yto",
        "sto",
        "yt",
        "jd",
        "ems",
        "jt",
    ]
)
# A waybill (SF034835118698) is letters and digits too: only these types are taken apart
# from letters, and a card (whose Luhn digit one serial in ten passes) only after its label.
_CARD_LABELS = frozenset(
    ["card", "cardno", "cardnumber", "bankcard", "acct", "account", "accountno"]
)
_GLUED_TYPES = frozenset({"CN_RESIDENT_ID", "CN_PHONE", "BANK_CARD", "US_SSN"})
# How IDs and mobiles are written in groups or with a stray space (OCR, forms, chat):
# the group sizes, after zero-width characters are dropped.
_SPACED_SHAPES = {
    "CN_RESIDENT_ID": {(6, 8, 4), (6, 4, 4, 4), (6, 6, 6)},
    "CN_PHONE": {(3, 4, 4), (3, 8), (7, 4)},
}
_ZERO_WIDTH_RE = re.compile(f"[{ZERO_WIDTH}]")
# How long an ID or a mobile is, its separators removed (with or without the country code).
_SPACED_LENGTHS = frozenset({11, 13, 15, 18})
_SPACED_SEPARATORS = re.compile(r"[ .\-]")


def _spaced(text: str, begin: int, end: int, window: str, whole: _Whole) -> Finding | None:
    """An ID or a mobile written in groups (110105 19491231 002X, 138.1589.2906), with one
    stray space (1101051949 1231002X) or with zero-width characters inside."""
    invisible = _ZERO_WIDTH_RE.search(text, begin, end) is not None
    # Written in groups: only an ID or a mobile, so only these lengths (cheap, first).
    if (
        not invisible
        and ("-" in window or " " in window or "." in window)
        and len(window.translate(_COMPACT_DROP)) not in _SPACED_LENGTHS
    ):
        return None
    if not _bounded(text, begin, end, ""):
        return None
    compact_window = window
    if invisible:  # folded to spaces: drop them
        pairs = zip(window, text[begin:end], strict=True)
        compact_window = "".join(ch for ch, orig in pairs if orig not in ZERO_WIDTH)
    groups = tuple(len(g) for g in _SPACED_SEPARATORS.split(compact_window))
    if not all(groups):
        return None
    run = compact_window.translate(_COMPACT_DROP)
    if not run.isalnum():
        return None
    if len(groups) == 1:  # zero-width characters only: the value as if they were not there
        return _whole_run(run, begin, whole, spaced=end - begin, invisible=True)
    found = _whole_run(run, begin, whole, spaced=end - begin)
    if found is None or found.type not in _SPACED_SHAPES:
        return None
    if groups in _SPACED_SHAPES[found.type]:
        return found  # a known grouping
    if found.type == "CN_RESIDENT_ID" and len(groups) == 2:
        return found  # one stray space
    return None


_TOKEN = re.compile(r"[A-Za-z0-9]+")
_DIGIT_RUN = re.compile(r"[0-9]{9}")


def _has_digit_run(token: str) -> bool:
    return _DIGIT_RUN.search(token) is not None


def _whole_run(
    run: str, begin: int, whole: _Whole, spaced: int = 0, *, invisible: bool = False
) -> Finding | None:
    """The value that is all of ``run`` (digits and letters, folded) at ``begin``, if any.
    ``spaced`` is the length of the text ``run`` was compacted from (separators removed)."""
    end = begin + (spaced or len(run))
    for name, pattern, valid in whole.get(len(run), ()):
        if spaced and not invisible and name in _NOT_COMPACTED:
            continue
        match = pattern.fullmatch(run)
        if match and valid(match):
            return Finding(begin, end, name)
    if 10 <= len(run) <= 12 and run[0] == "0" and (invisible or not spaced):
        landline = _LANDLINE_RUN.fullmatch(run)
        if landline and v.landline(landline[1] or landline[3], landline[2] or landline[4]):
            return Finding(begin, end, "CN_LANDLINE")
    if len(run) == 11 and not spaced and _MOBILE_SHAPE.fullmatch(run):
        return Finding(begin, end, "CN_PHONE", WEAK)
    if len(run) == 9 and not spaced and run.isdigit() and v.us_ssn(run[:3], run[3:5], run[5:]):
        return Finding(begin, end, "US_SSN", WEAK)  # SSN: 695100211, lifted by its label
    return None


# Types a compacted run (separators removed) is not read as: a grouped card number has its
# own patterns, and an IBAN or a passport are written with their own spacing.
_NOT_COMPACTED = frozenset({"BANK_CARD", "IBAN", "CN_PASSPORT", "CN_USCC"})


def _inside(text: str, begin: int, window: str) -> Iterator[Finding]:
    """Values inside a candidate (``window``, folded, at ``begin`` in ``text``)."""
    size = len(window)
    for name, pattern, valid, shortest, needs in RULES:
        if size < shortest or (needs and needs not in window):
            continue
        at = 0
        while (match := pattern.search(window, at)) is not None:
            start, stop = begin + match.start(), begin + match.end()
            if valid(match) and _bounded(text, start, stop, name):
                yield Finding(start, stop, name)
                at = match.end()
            else:  # a match that is no value may hide one that starts inside it
                at = match.start() + 1
    if _GLUED.search(window) is None:
        return  # no token of it has digits glued to letters
    for token in _TOKEN.finditer(window):  # digits glued to letters, in a spaced candidate
        if (
            token.end() - token.start() < size
            and not token[0].isdigit()
            and _has_digit_run(token[0])
        ):
            glued = _glued(token[0], begin + token.start(), _WHOLE)
            if glued is not None:
                yield glued


def _value_start(text: str, begin: int) -> int:
    """Where a value that takes in the candidate starting at ``begin`` (a digit) may start:
    before the letters just before it, the hex groups and colons of an IPv6 address it ends,
    a ``+`` before 86 or a ``(`` before an area code; not before ``ID:`` or ``（2024``."""
    limit = max(0, begin - _BACK_MAX)
    while begin > limit and text[begin - 1] in _LETTER_SET:
        begin -= 1
    # (A colon with no hex digit or colon before it is passed over again below: skip that.)
    if (
        begin > limit
        and text[begin - 1] in ":\uff1a"
        and (begin - 1 > limit and text[begin - 2] in _HEX_OR_COLON)
    ):
        i = begin - 1
        while i > limit and text[i - 1] in _HEX_OR_COLON:
            i -= 1
        # From the first whole hex group on (``peer:fdea:...`` starts at ``fdea``).
        # ... unless it starts with ``::`` after no letter or digit (``[::ffff:10.0.0.1]``).
        if not (text[i : i + 2].translate(FOLD) == "::" and not (i and text[i - 1] in _ALNUM_SET)):
            while i < begin and (text[i] in ":\uff1a" or (i and text[i - 1] in _ALNUM_SET)):
                i += 1
        begin = i
    before = text[begin - 1 : begin]
    if (before and before in "+\uff0b" and text[begin : begin + 2] in ("86", "\uff18\uff16")) or (
        before and before in "(\uff08" and text[begin] in "0\uff10"
    ):
        begin -= 1
    return begin


def _bounded(text: str, start: int, end: int, name: str) -> bool:
    """Not part of a longer run of digits or letters (nor a longer dotted number)."""
    alnum = _ALNUM_SET
    if start > 0 and text[start - 1] in alnum:
        return False
    after = text[end] if end < len(text) else ""
    if after in alnum:
        return False
    # Both look for a separator, a dash or a space, right outside the match.
    if (start and text[start - 1] in _GROUP_SEPS) or after in _GROUP_SEPS:
        if _continues_a_grouped_number(text, start, end, name):
            return False
        if _slice_of_a_number(text, start, end):
            return False
    if name == "IP_ADDRESS":
        return _whole_address(text, start, end)
    return True


def _whole_address(text: str, start: int, end: int) -> bool:
    """Not a piece of a longer dotted number (a version string such as 1.2.3.4.5) nor of a
    longer run of colon-separated hex groups."""
    before = text[max(0, start - 2) : start].translate(FOLD)
    after = text[end : end + 2].translate(FOLD)
    if before[-1:] == "/" and before[:1].isalpha():  # a product's version: Edg/103.0.17.35
        return False
    if (before[-1:] == "." and before[:1].isdigit()) or (after[:1] == "." and after[1:].isdigit()):
        return False
    if ":" not in text[start:end].translate(FOLD):
        return True  # IPv4, maybe with a port after it
    if after[:1] == ":" and after[1:] and after[1:] in _HEX:
        return False
    if before[-1:] == ":":  # after a whole token of hex digits and a colon: a longer run
        i = start - 1
        while i > 0 and text[i - 1].translate(FOLD) in _HEX:
            i -= 1
        if i < start - 1 and (i == 0 or text[i - 1] not in _ALNUM_SET):
            return False
    return True


def _continues_a_grouped_number(text: str, start: int, end: int, name: str = "") -> bool:
    """``0212 3456 7893`` in ``6222 0212 3456 7893``: a match written in groups is part of a
    longer grouped number when the same separator and a digit continue it on either side, or
    groups of capitals and digits such as an IBAN's (``GB51 MLAS 3392 4820 7638 62``)."""
    seps = _GROUP_SEPS
    # An opening parenthesis starts a value of its own: ``402 (010) 8121 7504``.
    sep_before = (
        start >= 2
        and text[start - 1] in seps
        and text[start - 2] in _ALNUM_SET
        and text[start] not in "(\uff08"
    )
    sep_after = end + 1 < len(text) and text[end] in seps and text[end + 1] in _DIGIT_SET
    # A neighbour of more than six digits is no group of the same number but a value of its
    # own (+86 13812345678 8613812345678).
    if sep_after and _run_length(text, end + 1, 1) > 6:
        sep_after = False
    if sep_before and name == "CN_LANDLINE" and text[start] in "0\uff10":
        # A landline after an address's room number (…3单元1603 0451 8441 1587):
        # the number before is a token of its own, not the first group of this one.
        run = _run_length(text, start - 2, -1)
        before = text[start - 2 - run : start - 1 - run]
        if run <= 4 and before in _ROOM_ENDS:
            sep_before = False
    if sep_before and _run_length(text, start - 2, -1) > 6:
        sep_before = False
    if not (sep_before or sep_after):
        return False
    inner = text[start:end].translate(FOLD).strip("+( ")
    if sep_before:
        sep = text[start - 1].translate(FOLD)
        if sep in inner and (text[start - 2] in _DIGIT_SET or _groups_before(text, start - 1, sep)):
            return True
    return sep_after and text[end].translate(FOLD) in inner


def _slice_of_a_number(text: str, start: int, end: int) -> bool:
    """``7868-13840477067-41``, ``HT-41-<ID>-38``, ``78 15024763525 803``: a value joined to
    other digits by a dash, or between digits on both sides of a space, is part of a longer
    number (a serial, a location code), not a value of its own."""
    dash_before = start >= 2 and text[start - 1] in "-\uff0d" and text[start - 2] in _DIGIT_SET
    dash_after = end + 1 < len(text) and text[end] in "-\uff0d" and text[end + 1] in _DIGIT_SET
    if (dash_before or dash_after) and not _has_separator(text, start, end):
        return True
    spaces = " \u3000"
    return (
        start >= 2
        and end + 1 < len(text)
        and text[start - 1] in spaces
        and text[end] in spaces
        and text[start - 2] in _DIGIT_SET
        and text[end + 1] in _DIGIT_SET
        and not _has_separator(text, start, end)
    )


def _has_separator(text: str, start: int, end: int) -> bool:
    return any(not ch.isalnum() for ch in text[start:end])


# What a room or building number follows in an address (3单元1603, 8号楼502, 12层1201).
_ROOM_ENDS = frozenset("元室号楼层栋幢座")


def _run_length(text: str, at: int, step: int) -> int:
    """How many digits and letters run from ``text[at]`` on, in direction ``step``."""
    n, i = 0, at
    while 0 <= i < len(text) and text[i] in _ALNUM_SET and n < 8:
        n, i = n + 1, i + step
    return n


def _groups_before(text: str, at: int, sep: str) -> bool:
    """Before ``text[at] == sep``: groups of at most four capitals or digits, each followed
    by ``sep``, one of them with a digit in it (``GB51 MLAS ``, not ``VISA ``)."""
    while at > 0 and text[at].translate(FOLD) == sep:
        i = at
        while i > 0 and at - i < 5 and _CAPITAL_OR_DIGIT.match(text, i - 1):
            i -= 1
        group = text[i:at].translate(FOLD)
        if not group or len(group) > 4 or (i > 0 and text[i - 1] in _ALNUM_SET):
            return False
        if not group.isalpha():
            return True
        at = i - 1
    return False


def _emails(text: str) -> Iterator[Finding]:
    local_chars = _EMAIL_LOCAL_CHARS
    for at_sign in ("@", "\uff20"):
        at = text.find(at_sign)
        while at != -1:
            # Full-width addresses are read on a folded copy of the text around the @.
            begin = max(0, at - 64)
            around = text[begin : at + 256]
            if (
                at_sign != "@"
                or _full_width(text[at - 1 : at])
                or _full_width(text[at + 1 : at + 2])
            ):
                around = around.translate(FOLD)
            i = at - begin
            while i > 0 and around[i - 1] in local_chars:
                i -= 1
            domain = EMAIL_DOMAIN.match(around, at - begin + 1)
            if (
                domain
                and i < at - begin
                and around[i] != "."
                and at - begin - i <= 64
                and domain[0].rsplit(".", 1)[-1].lower() not in _FILE_EXTENSIONS
            ):
                yield Finding(begin + i, begin + domain.end(), "EMAIL")
            at = text.find(at_sign, at + 1)


def _full_width(ch: str) -> bool:
    return "\uff01" <= ch <= "\uff5e"


def without_overlaps(found: list[Finding]) -> list[Finding]:
    """Longest first, then the more specific type; a finding overlapping a kept one is dropped.
    Only findings that overlap each other compete, so the text's findings are taken in runs
    of overlapping ones and most runs are a single finding."""
    ordered = sorted(found, key=BY_SPAN)
    kept: list[Finding] = []
    i, n = 0, len(ordered)
    while i < n:
        f = ordered[i]
        j, run_end = i + 1, f.end
        while j < n and ordered[j].start < run_end:
            run_end = max(run_end, ordered[j].end)
            j += 1
        if j == i + 1:
            kept.append(f)
        else:
            kept += _greedy(ordered[i:j])
        i = j
    return kept


def _greedy(found: list[Finding]) -> list[Finding]:
    kept: list[Finding] = []  # sorted by start, never overlapping
    for f in sorted(found, key=lambda f: (f.start - f.end, PRIORITY[f.type], f.start)):
        i = bisect.bisect_left(kept, f.start, key=lambda k: k.start)
        if (i == 0 or kept[i - 1].end <= f.start) and (i == len(kept) or f.end <= kept[i].start):
            kept.insert(i, f)
    return kept
