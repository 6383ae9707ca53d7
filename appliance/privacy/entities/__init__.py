"""PERSON, ADDRESS and US_PHONE findings: names, postal addresses and North American phone
numbers in Chinese and English text.

Unlike the identifiers in ``detectors``, these have no check digits: a finding is decided
by a small score that adds up evidence. Every scan is a compiled regular expression that
starts with a literal or a character class (alternations are factored into tries), so C
skips the text between candidates; Python only looks at the candidates, and at a few
characters around each. Findings come back sorted and without overlaps (US_PHONE over
ADDRESS over PERSON, then the higher score); each score is 0.5 to 1.

PERSON
    Chinese names: a surname (single or compound) and one or two given-name characters.
    Evidence: a title right after (先生, 女士, 经理, 老师, ...; outside the span) or,
    weaker, right before (护士长刘红梅), a label right before (姓名：, 患者, 收件人, 尊敬的,
    ...), a verb or particle right after (说, 表示, 来电, 的电话, ，男, ...; a time word may
    come between: 张伟明天出院), a structure (a JSON key or a table column named
    姓名/name/联系人...), or a list (张伟、王芳、李秀英). A surname alone with a title
    (王先生, 老张) is not taken: it has no given name to mask. Words
    that begin with a surname character (王国, 高兴, 马上, 许多, 邢台, ...) are known from
    jieba's dictionary (its word frequencies and part-of-speech tags, read directly, not
    by segmenting the text). Without evidence only a clear name is taken: three
    characters, bounded by punctuation, not a word, with given-name characters.
    Pinyin names (Zhang Wei, WANG Fang, Ouyang Xiu, Wei Zhang): a pinyin surname and a
    given name of valid pinyin syllables.
    English names (First Last, First M. Last): a first name from the US census lists
    (the ``names`` package), a capitalised last name (strongest when a census surname),
    and context (Dr./Mr. before, outside the span; Dear, Name:, Patient:, signed, said).
ADDRESS
    Chinese addresses from the province down to the room, whole or partial, validated
    against the administrative divisions table that the ``cpca`` package ships (read as
    CSV: cpca itself is not imported, it needs pandas). English street addresses: a house
    number, a street name and type, then unit, city, state and ZIP as written.
US_PHONE
    NANP numbers written with separators: (555) 234-5678, 555-234-5678, +1-555-234-5678,
    +1 (555) 234-5678. Area code and exchange do not start with 0 or 1 and are not N11
    (``STRICT_EXCHANGE``); the area code's middle digit is not 9; China's 400 service
    numbers are not taken. Never a part of a longer number.

Tables load once, lazily, on the first call (about 0.2 s).

The package: ``tables`` (the word lists written here, the tables read from jieba, names and
cpca, and the windowed scan a few of the costlier patterns use), ``names`` (PERSON),
``addresses`` (ADDRESS and US_PHONE); this module puts their findings together.
"""

from __future__ import annotations

from appliance.privacy.detectors import BY_SPAN, Finding
from appliance.privacy.entities.addresses import _cn_addresses, _digit_led, find_us_phones
from appliance.privacy.entities.names import _cn_names, _latin_names, _structured_names
from appliance.privacy.entities.tables import _load

ENTITY_TYPES = ("PERSON", "ADDRESS", "US_PHONE")

# ------------------------------------------------------------------ entry point


def find_entities(text: str) -> list[Finding]:
    """PERSON, ADDRESS and US_PHONE findings in ``text``, sorted, without overlaps."""
    if not text:
        return []
    t = _load()
    found: list[Finding] = []
    found += _digit_led(text)
    found += _cn_addresses(text, t)
    found += _latin_names(text, t)
    found += _cn_names(text, t)
    found += _structured_names(text, t)
    return _resolve(found)


_PRIORITY = {"US_PHONE": 3, "ADDRESS": 2, "PERSON": 1}


def _resolve(found: list[Finding]) -> list[Finding]:
    """One finding per span: the higher type priority, then the higher score, then longer."""
    if not found:
        return []
    # (By start; among those with the same start the order does not matter: they all
    # join one cluster, and _best_of ranks a cluster by its own key.)
    ordered = sorted(set(found), key=BY_SPAN)
    kept: list[Finding] = []
    cluster = [ordered[0]]
    reach = ordered[0].end
    for f in ordered[1:]:
        if f.start < reach:
            cluster.append(f)
            reach = max(reach, f.end)
            continue
        kept += cluster if len(cluster) == 1 else _best_of(cluster)
        cluster, reach = [f], f.end
    kept += cluster if len(cluster) == 1 else _best_of(cluster)
    kept.sort(key=BY_SPAN)
    return kept


def _best_of(cluster: list[Finding]) -> list[Finding]:
    ranked = sorted(cluster, key=lambda f: (-_PRIORITY[f.type], -f.score, f.start - f.end))
    kept: list[Finding] = []
    for f in ranked:
        if all(f.end <= k.start or k.end <= f.start for k in kept):
            kept.append(f)
    return kept


def spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` of each finding (for tests and tools)."""
    return [(f.start, f.end, f.type) for f in find_entities(text)]


def preload() -> None:
    """Load the tables now (a server calls this at start, so no request waits for it)."""
    _load()


__all__ = ["ENTITY_TYPES", "find_entities", "find_us_phones", "preload", "spans"]
