"""PERSON: Chinese names (surname, given name and the evidence around them), pinyin and
English names, and names in structured text (JSON keys, table columns)."""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Iterator

from appliance.privacy.detectors import Finding
from appliance.privacy.entities.tables import (
    _AFTER_VERBS,
    _CJK,
    _CJK_RE,
    _CN_CONTEXT_LABELS,
    _COMPOUND_SET,
    _EN_AMBIGUOUS_FIRST,
    _EN_COLON_WORDS,
    _EN_CONTEXT_WORDS,
    _EN_STOP,
    _EN_TITLES,
    _GIVEN,
    _LABELS,
    _NOT_GIVEN,
    _PINYIN_AMBIGUOUS,
    _PINYIN_NOT_NAMES,
    _PINYIN_SURNAMES,
    _START_CLASS,
    _START_SET,
    _STRONG_SET,
    _STRONG_TITLES,
    _SURNAME_SET,
    _SYLLABLE_SET,
    _TITLE_SET,
    _TITLES,
    _alt,
    _class_without,
    _Tables,
    _words,
    finditer_in,
)


def _en_context(text: str, start: int) -> bool:
    before = text[max(0, start - 32) : start].rstrip(" \t\r\n")
    colon = before.endswith((":", "："))
    before = before.rstrip(" \t\r\n:：,，-–—")
    if before.endswith(_CN_CONTEXT_LABELS):
        return True
    words = before.lower().split()[-3:]
    if not words:
        return False
    last = words[-1]
    if colon and last in _EN_COLON_WORDS:
        return True
    # The last one, two or three words as a phrase.
    context = _EN_CONTEXT_WORDS
    if last in context:
        return True
    n = len(words)
    return (n > 1 and f"{words[-2]} {last}" in context) or (n > 2 and " ".join(words) in context)


_EN_CONTEXT_AFTER = re.compile(
    r"(?:\s*,\s*(?:MD|M\.D\.|PhD|Ph\.D\.|Esq\.?|RN|DDS|CPA|Jr\.?|Sr\.?)\b"
    r"|\s+(?:said|says|told|wrote|writes|asked|replied|called|emailed|phoned|reported"
    r"|explained|noted|added|commented|confirmed|signed|joined|visited|complained|stated"
    r"|who|was born|is a|was a|has been|will be)\b"
    r"|['’]s\s+(?:phone|email|address|mother|father|wife|husband|son|daughter|account)\b)"
)
_CAPSEQ = re.compile(
    r"[A-Z](?<![A-Za-z0-9'’-][A-Z])(?:['’][A-Z])?[A-Za-zÀ-ÖØ-öø-ÿ]*(?:-[A-Za-z][a-zß-öø-ÿ]*)?"
    r"(?:[ ](?:[A-Z]\.|(?:(?:van|von|de|der|den|da|di|du|del|la|le|bin|al|dos|das)[ ])*"
    r"(?:[A-Z]['’])?[A-Z][A-Za-zÀ-ÖØ-öø-ÿ]*(?:-[A-Za-z][a-zß-öø-ÿ]*)?)){1,3}"
)
_EN_TITLE_WORDS = frozenset(_EN_TITLES.split("|"))
_TITLE_BEFORE = re.compile(rf"(?<![A-Za-z])(?:{_EN_TITLES})\.?[ \t]+$")
_TOKEN = re.compile(
    r"[A-Z]\.|(?:(?:van|von|de|der|den|da|di|du|del|la|le|bin|al|dos|das)[ ])*"
    r"(?:[A-Z]['’])?[A-Z][A-Za-zÀ-ÖØ-öø-ÿ]*(?:-[A-Za-z][a-zß-öø-ÿ]*)?"
)

# ------------------------------------------------------------------ Chinese name scans

# A name just before a title, a verb or a sex (the match ends where the name ends): the
# scan starts at a surname character, so C skips the rest.

_SEX = "[，,（(][男女](?=[，,、；;）)\\s0-9]|$)"
# Where a name may end: a title, a verb, a sex after a comma (each scan starts with a
# literal or a character class, so C skips the text between them).
# Titles and verbs after a name; labels before one (the label's scan looks ahead for a
# surname, in C).
_CN_RIGHT = re.compile(_alt([*_STRONG_TITLES, *_AFTER_VERBS]))
# A label before a name (患者：, 联系人 , Customer:), a colon and two spaces at most, then a
# surname (``label``, then the scan looks ahead for the surname in C). The scan is in two:
# the Chinese labels (C skips to their first characters, rare outside Chinese text), and
# the English ones, which begin with letters as common as c, p, r or s: those are looked
# for only just before a surname that follows a label's last letter, a colon or a space
# (_LEFT_ASCII_AT), where an English label's match ends. The two never overlap (one ends
# in letters, a colon or spaces, the other starts with a Chinese character), so together
# they find what one scan of all the labels would.
_LEFT_LABELS = [*_LABELS, "name", "Name", "NAME"]
_LEFT_CJK = re.compile(
    rf"(?P<label>{_alt(w for w in _LEFT_LABELS if not w.isascii())})"
    rf"[:：]?[ \t\u3000]{{0,2}}(?=[{_START_CLASS}][{_CJK}])"
)
_LEFT_ASCII = re.compile(
    rf"(?P<label>{_alt(w for w in _LEFT_LABELS if w.isascii())})"
    rf"[:：]?[ \t\u3000]{{0,2}}(?=[{_START_CLASS}][{_CJK}])"
)
_LEFT_ASCII_LONGEST = max(len(w) for w in _LEFT_LABELS if w.isascii())
# (an English label's last character, maybe a colon, up to two spaces, then the surname:
# one lookbehind for each, after the surname so that C skips to one)
_LEFT_ASCII_END = "".join(sorted({w[-1] for w in _LEFT_LABELS if w.isascii()}))
_LEFT_ASCII_AT = re.compile(
    rf"[{_START_CLASS}](?:"
    + "|".join(
        f"(?<=[{re.escape(_LEFT_ASCII_END)}]{colon}{space}.)"
        for colon in ("", "[:：]")
        for space in ("", "[ \t\u3000]", "[ \t\u3000]{2}")
    )
    + rf")(?=[{_CJK}])"
)
# Labels that are evidence at a line's or a clause's start only; titles before a name
# (护士长刘红梅) are weaker evidence than labels.
_WEAK_LABELS = frozenset(("致", "客户", "员工", "记者", "通讯员"))
# Any label that names a person's role and ends in a colon (送检医生：, 承租方（乙方）：,
# 值班经理：), a speaker at a line's start (石宁：…, [17:30] 苏彬：…), and a name quoted alone
# or alone in a CSV cell ('司徒磊', ,萧桂香,).
_ROLE_ENDS = "人者方主员生师长理名警问"
_CN_ROLE_LABEL = re.compile(
    rf"(?:[{_CJK}]{{0,5}}[{_ROLE_ENDS}]|姓[ \u3000]+名)[0-9]{{0,2}}"
    rf"(?:[（(][^）)\n]{{1,6}}[）)])?[:：][ \t\u3000]{{0,2}}"
    rf"(?=[{_START_CLASS}][{_CJK}])"
)
# Where a role label can be: its colon, with a surname after it (_ROLE_COLON). The label
# starts at most _ROLE_BACK characters before the colon (five characters and a role's end,
# two digits, a bracket of six), or at a 姓 that spaces part from its 名 (_XING_MING).
_ROLE_COLON = re.compile(rf"[:：](?=[ \t\u3000]{{0,2}}[{_START_CLASS}][{_CJK}])")
_ROLE_BACK = 5 + 1 + 2 + 8
_ROLE_AFTER = 1 + 2 + 2  # the colon, two spaces, a surname and the character after it
_XING_MING = re.compile("姓[ \u3000]+名")
# (a speaker's colon, a role in brackets, a time, or two spaces before an English name)
_CN_SPEAKER = re.compile(
    rf"(?m)(?:^|(?<=\] )|(?<=@))(?=[{_START_CLASS}][{_CJK}]{{1,3}}"
    rf"(?:[:：（(]|[ \u3000][0-9]{{1,2}}:[0-9]{{2}}|[ \u3000]{{2}}[A-Z]| |$))"
)
_CN_ALONE = re.compile(
    rf"(?m)(?:(?<=['\"‘“])|(?<=^)|(?<=[,，\t|]))(?=[{_START_CLASS}][{_CJK}]{{1,3}}(?:['\"’”,，\t|]|$))"
)
# Where either may match: after a line's end, a bracket and a space, an @, a quote or a
# cell's separator, before a surname (the two scans test every position; this one skips
# to those characters in C).
_SPEAKER_OR_ALONE_AT = re.compile(rf"(?:\n|\] |[@'\"‘“,，\t|])(?=[{_START_CLASS}][{_CJK}])")
_CN_SEX = re.compile(r"[男女](?<=[，,（(][男女])(?=[，,、；;）)\s0-9]|$)")
_ANCHOR_AFTER = re.compile(
    rf"(?P<title>{_alt(_STRONG_TITLES)})|(?P<verb>{_alt(_AFTER_VERBS)})|(?P<sex>{_SEX})"
)
_CJK_RUN = re.compile(f"[{_CJK}]+")
# A short run of CJK characters on its own (between punctuation, spaces or line ends).
# (or after a function character: 我叫孙悟空，是李明。)
_BOUND_FUNCTION = "是叫和与跟找问给对让请"
_CN_BOUNDED = re.compile(
    rf"[{_START_CLASS}](?<![{_class_without(0x3400, 0x9FFF, _BOUND_FUNCTION)}].)"
    rf"[{_class_without(0x3400, 0x9FFF, ''.join(_NOT_GIVEN - set('三四五六二')))}]{{1,3}}"
    rf"(?![{_CJK}])"
)
_LEFT_CONTEXT = re.compile(f"(?:{_alt([*_LABELS, *_TITLES])})$")
_RIGHT_CONTEXT = re.compile(_alt([*_TITLES, *_AFTER_VERBS]))
# Structure: a JSON key, a ``key: value`` line, a table header.
_NAME_KEYS = (
    "name|full_name|fullname|full name|customer_name|customer name|contact_name|contact name"
    "|contact|patient_name|patient name|patient|person|employee_name|recipient|receiver"
    "|姓名|名字|联系人|收件人|收货人|寄件人|客户名称|客户姓名|客户|患者姓名|患者|员工姓名|申请人"
    "|负责人|经办人|持卡人|开户名|户主|法定代表人|联系人姓名|签名"
)
_JSON_NAME = re.compile(rf"""["'](?i:{_NAME_KEYS})["']\s*[:=]\s*["']([^"'\n\\]{{2,40}})["']""")
# A table's header cell (checked for a separator on each side in Python).
_HEADER_KEYS = _words(
    "name Name NAME full_name fullname FullName 姓名 联系人 收件人 收货人 客户名称"
    " 客户姓名 患者姓名 员工姓名 申请人 负责人 经办人 持卡人 开户名 户主 联系人姓名"
)
_HEADER = re.compile(_alt(_HEADER_KEYS))
_CELL_EDGE = frozenset(",\t|;\uff0c\uff1b\"' ")
_EN_NAME_VALUE = re.compile(
    r"(?:[A-Z]['’])?[A-Z][A-Za-z'’-]+(?:[ ](?:[A-Z]\.|(?:[A-Z]['’])?[A-Z][A-Za-z'’-]+)){1,2}"
)
_HAN_NAME_VALUE = re.compile(f"[{_CJK}]{{2,4}}")


# ------------------------------------------------------------------ Latin-script names


def _plain(word: str) -> str:
    """The word as the name lists spell it: lower case, no particle, no accents."""
    plain = _PLAIN.get(word)
    if plain is None:
        if len(_PLAIN) > 50_000:
            _PLAIN.clear()
        plain = _PLAIN[word] = _plain_of(word)
    return plain


_PLAIN: dict[str, str] = {}  # names come from lists: the same words again and again


def _plain_of(word: str) -> str:
    word = word.split()[-1].lower()
    if not word.isascii():
        word = word.replace("’", "'")
        word = "".join(
            c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)
        )
    return word


def _latin_names(text: str, t: _Tables) -> list[Finding]:
    found: list[Finding] = []
    first_names, last_names = t.first_names, t.last_names
    contexts: dict[int, bool] = {}  # _en_context by position, asked for more than once
    for m in _CAPSEQ.finditer(text):
        seq = m.group(0)
        # Quick rejection: a name has a known first name or surname, or a pinyin surname.
        words = seq.split(" ")
        keys = [w.lower() if w.isascii() else _plain(w) for w in words]
        if not (
            any(k in first_names or k in last_names or k in _PINYIN_SURNAMES for k in keys[:-1])
            or keys[-1] in _PINYIN_SURNAMES
        ):
            continue
        start = m.start()
        tokens = [
            (tm.start() + start, tm.end() + start, tm.group(0)) for tm in _TOKEN.finditer(seq)
        ]
        titled = _TITLE_BEFORE.search(text, max(0, start - 12), start) is not None
        if tokens[0][2] in _EN_TITLE_WORDS:
            tokens, titled = tokens[1:], True  # Dr Mary Johnson, Miss Jane Doe
        found += _names_in_sequence(text, tokens, titled, t, contexts)
    return found


def _names_in_sequence(
    text: str,
    tokens: list[tuple[int, int, str]],
    titled: bool,
    t: _Tables,
    contexts: dict[int, bool],
) -> list[Finding]:
    n = len(tokens)
    if n < 2:
        return []
    keys = [_plain(w) for _s, _e, w in tokens]
    stops = [len(k) > 1 and k in _EN_STOP for k in keys]
    # A stop word after a candidate makes the whole sequence an organisation or a place
    # (George Washington University, Jordan River): nothing before it is a name.
    last_stop = max((i for i in range(n) if stops[i]), default=-1)
    out: list[Finding] = []
    i = last_stop + 1
    while i < n - 1:
        best: tuple[float, int, Finding] | None = None
        for size in (3, 2):
            if i + size > n:
                continue
            f = _judge_latin(text, tokens, keys, i, size, titled and i == 0, t, contexts)
            if f and (best is None or f.score > best[0]):
                best = (f.score, size, f)
        if best:
            out.append(best[2])
            i += best[1]
        else:
            i += 1
    return out


def _judge_latin(
    text: str,
    tokens: list[tuple[int, int, str]],
    keys: list[str],
    i: int,
    size: int,
    titled: bool,
    t: _Tables,
    contexts: dict[int, bool],
) -> Finding | None:
    first, last = tokens[i][2], tokens[i + size - 1][2]
    if first.endswith(".") or last.endswith(".") or first[0].islower():
        return None
    f_key, l_key = keys[i], keys[i + size - 1]
    if f"{f_key} {l_key}" in _PINYIN_NOT_NAMES:
        return None
    start, end = tokens[i][0], tokens[i + size - 1][1]
    context: bool | None = True if titled else None  # looked at only when it matters
    after = _EN_CONTEXT_AFTER.match(text, end) is not None
    # Pinyin: surname + given name (Zhang Wei, WANG Fang), or given + surname (Wei Zhang).
    if size == 2 and (f_key in _PINYIN_SURNAMES or l_key in _PINYIN_SURNAMES):
        if context is None:
            context = _en_context_at(text, start, contexts)
        pinyin = _judge_pinyin(first, last, context or after)
        if pinyin is not None:
            return Finding(start, end, "PERSON", pinyin)
    if size == 3:
        middle = tokens[i + 1][2]
        m_key = keys[i + 1]
        m_rank = t.last_names.get(m_key, 99999)
        l_rank = t.last_names.get(l_key, 99999)
        if not (
            middle.endswith(".") or m_key in t.first_names or (m_rank <= 5000 and l_rank <= 20000)
        ):
            return None
    f_key = f_key.split("-")[0]
    share = t.first_names.get(f_key, 0.0)
    rank = t.last_names.get(l_key.split("-")[-1])
    if not share and rank is None:
        return None
    score = 0.0
    if share:
        score += 0.35 if f_key not in _EN_AMBIGUOUS_FIRST else 0.15
        if share < 0.003:
            score -= 0.1
    if rank is not None:
        score += 0.45 if rank <= 1000 else 0.35 if rank <= 10000 else 0.2
    if size == 3:
        score += 0.1
    if after:
        score += 0.2
    if titled:
        score += 0.5
    else:
        if context is None:
            context = _en_context_at(text, start, contexts)
        if context:
            score += 0.35
        elif first.isupper() and len(first) > 1:
            score -= 0.2  # A HEADLINE IN CAPITALS
    if score < 0.6:
        return None
    return Finding(start, end, "PERSON", round(min(0.95, 0.45 + score / 2), 2))


def _judge_pinyin(first: str, last: str, context: bool) -> float | None:
    a, b = first.lower(), last.lower()
    if f"{a} {b}" in _PINYIN_NOT_NAMES:
        return None
    for surname, given, sur_word in ((a, b, first), (b, a, last)):
        if surname not in _PINYIN_SURNAMES or not _pinyin_given(given):
            continue
        given_word = last if sur_word is first else first
        if not (
            given_word[0].isupper()
            and (given_word[1:].islower() or given_word.isupper() or "-" in given_word)
        ):
            continue
        if sur_word is last and not context and a in _PINYIN_SURNAMES:
            continue  # Li Wang: read as surname first
        two_syllables = len(given) > 3 and not _single_syllable(given)
        if (surname in _PINYIN_AMBIGUOUS or given in _PINYIN_AMBIGUOUS) and not (
            context or two_syllables or sur_word.isupper()
        ):
            continue
        if sur_word is last and not (context or sur_word.isupper()) and given in _PINYIN_SURNAMES:
            continue
        return 0.9 if context else 0.8
    return None


def _pinyin_given(word: str) -> bool:
    """Whether ``word`` (lower case) is a given name in pinyin: one or two syllables, maybe
    split by a hyphen or an apostrophe. (By set lookups: the regular expression of every
    syllable, case ignored, tried each of its four hundred alternatives in turn.)"""
    syllables = _SYLLABLE_SET
    if word in syllables:
        return True
    for cut in range(1, min(len(word), _LONGEST_SYLLABLE + 1)):
        if word[:cut] in syllables:
            rest = word[cut:]
            if rest in syllables or (rest[0] in "-'’" and rest[1:] in syllables):
                return True
    return False


_LONGEST_SYLLABLE = max(map(len, _SYLLABLE_SET))


def _en_context_at(text: str, start: int, contexts: dict[int, bool]) -> bool:
    found = contexts.get(start)
    if found is None:
        found = contexts[start] = _en_context(text, start)
    return found


def _single_syllable(word: str) -> bool:
    return word in _SYLLABLE_SET


# ------------------------------------------------------------------ Chinese names


def _cn_names(text: str, t: _Tables) -> list[Finding]:
    found: list[Finding] = []
    memo: dict[tuple[int, bool, bool], Finding | None] = {}
    for m in _CN_RIGHT.finditer(text):
        _name_before(text, m.start(), t, found)
        after = m.end()
        if text[after : after + 1] in _START_SET and m.group(0) in _TITLE_SET:
            f = _after_label(text, after, m.group(0), m.start(), t, memo)  # 护士长刘红梅
            if f:
                found.append(f)
    for m in _left_labels(text):
        f = _after_label(text, m.end(), m["label"], m.start(), t, memo)
        if f:
            found.append(f)
    for m in _role_labels(text):
        f = _after_label(text, m.end(), "姓名", m.start(), t, memo)
        if f:
            found.append(f)
    for at in _speakers_or_alone(text):
        f = _after_label(text, at, "姓名", at, t, memo)
        if f and _right_ok(text, f.end) and not _a_word(text[f.start : f.end], t):
            found.append(f)
    for m in _CN_SEX.finditer(text):
        _name_before(text, m.start() - 1, t, found)  # ，男 / （女
    for m in _CN_BOUNDED.finditer(text):
        f = _bounded(text, m.start(), m.end(), t)
        if f:
            found.append(f)
    return found


def _left_labels(text: str) -> list[re.Match[str]]:
    """The labels before a name, in order: the Chinese labels' scan and the English ones'."""
    found = list(_LEFT_CJK.finditer(text))
    back = _LEFT_ASCII_LONGEST + 3  # a label, a colon, two spaces
    windows = [
        (m.start() - back, m.start() - 1, m.start() + 2) for m in _LEFT_ASCII_AT.finditer(text)
    ]
    if windows:
        found += finditer_in(_LEFT_ASCII, text, windows)
        found.sort(key=_START)
    return found


def _role_labels(text: str) -> Iterator[re.Match[str]]:
    """``_CN_ROLE_LABEL.finditer(text)``, searched only before a colon a surname follows."""
    windows = [
        (q - _ROLE_BACK, q, q + _ROLE_AFTER) for q in map(_START, _ROLE_COLON.finditer(text))
    ]
    if "姓" in text:
        windows += [
            (m.start(), m.start(), m.end() + 10 + _ROLE_AFTER) for m in _XING_MING.finditer(text)
        ]
    return finditer_in(_CN_ROLE_LABEL, text, windows)


def _speakers_or_alone(text: str) -> list[int]:
    """Where ``_CN_SPEAKER`` or ``_CN_ALONE`` match (both empty matches), in order."""
    at = [0] if text[:1] in _START_SET else []
    at += map(_END, _SPEAKER_OR_ALONE_AT.finditer(text))
    return [p for p in at if _CN_SPEAKER.match(text, p) or _CN_ALONE.match(text, p)]


_START = operator.methodcaller("start")
_END = operator.methodcaller("end")


def _name_before(text: str, end: int, t: _Tables, found: list[Finding]) -> None:
    f = None
    if _surname_near(text, end):  # cheap test first: a surname two to four characters back
        f = _before_anchor(text, end, t)
    if f is None:
        # A time or a function word between the name and the verb (张伟明天出院).
        for length in (2, 1):
            if text[end - length : end] in _BETWEEN and _surname_near(text, end - length):
                f = _before_anchor(text, end - length, t, end)
                if f:
                    break
    if f:
        found.append(f)


def _surname_near(text: str, end: int) -> bool:
    s = _START_SET
    return (
        text[end - 2 : end - 1] in s or text[end - 3 : end - 2] in s or text[end - 4 : end - 3] in s
    )


def _surname_len(cand: str) -> int:
    """1 or 2 (a compound surname), or 0 when ``cand`` does not start with a surname."""
    if cand[:2] in _COMPOUND_SET and len(cand) >= 3:
        return 2
    return 1 if cand[:1] in _SURNAME_SET else 0


_GIVEN_CACHE: dict[str, float] = {}


def _given_ok(given: str, t: _Tables) -> float:
    """How plausible ``given`` is as a given name: 0 (never) to 1."""
    score = _GIVEN_CACHE.get(given)
    if score is None:
        if len(_GIVEN_CACHE) > 50_000:
            _GIVEN_CACHE.clear()
        score = _GIVEN_CACHE[given] = _given_score(given, t)
    return score


def _given_score(given: str, t: _Tables) -> float:
    if not given or any(c in _NOT_GIVEN for c in given):
        if given in ("三", "四", "五", "六", "二"):
            return 0.6  # 张三, 李四, 王五
        if not given or not (given[0] in "一小大" and len(given) == 2):
            return 0.0
    if given in _TITLE_SET or given[:2] in _TITLE_SET:
        return 0.0
    score = 1.0
    for c in given:
        if c in _GIVEN:
            continue
        n = t.given_counts.get(c, 0)
        score *= 0.8 if n >= 15 else 0.55 if n >= 5 else 0.25
    return score


def _surname_prior(cand: str, slen: int) -> float:
    if slen == 2:
        return 0.8 if cand[:2] != "东方" else 0.4
    c = cand[0]
    return 1.0 if c in _STRONG_SET else 0.55


def _word_penalty(text: str, start: int, cand: str, t: _Tables) -> float:
    """How much the lexicon says ``cand`` (at ``start``) is an ordinary word, 0 to 1."""
    entry = t.lexicon.get(cand)
    if entry is not None:
        freq, pos = entry
        if pos.startswith("nr"):
            return 0.0 if freq < 300 else 0.3
        # jieba's rarest entries are often names it tagged otherwise (夏侯惇 3 ns).
        return 1.0 if freq >= 50 else 0.6 if freq >= 10 else 0.3
    # A longer word starting here (程序员, 周末去 is 周末 + 去, 丁字路口).
    for length in (4, 3):
        if len(cand) < length:
            word = text[start : start + length]
            e = t.lexicon.get(word)
            if e is not None and not e[1].startswith("nr") and e[0] >= 20:
                return 1.0
    # Its first two characters are a frequent word (许多人, 马上就).
    if len(cand) == 3:
        e = t.lexicon.get(cand[:2])
        if e is not None and not e[1].startswith("nr") and e[0] >= 3000:
            return 0.7
    return 0.0


_Entry = tuple[int, str] | None


def _penalty_of(length: int, two: _Entry, three: _Entry, four: _Entry) -> float:
    """``_word_penalty`` of the ``length`` characters at a position, from the lexicon's
    entries for the two, three and four characters there (looked up once for all lengths)."""
    entry = two if length == 2 else three if length == 3 else four
    if entry is not None:
        freq, pos = entry
        if pos.startswith("nr"):
            return 0.0 if freq < 300 else 0.3
        return 1.0 if freq >= 50 else 0.6 if freq >= 10 else 0.3
    for longer, e in ((4, four), (3, three)):
        if length < longer and e is not None and not e[1].startswith("nr") and e[0] >= 20:
            return 1.0
    if length == 3 and two is not None and not two[1].startswith("nr") and two[0] >= 3000:
        return 0.7
    return 0.0


def _left_ok(text: str, start: int) -> bool:
    """Whether a name may begin at ``start``: after punctuation, a non-CJK character, the
    text's start, a function character or a label or title."""
    if start == 0:
        return True
    c = text[start - 1]
    if not ("\u3400" <= c <= "\u9fff"):
        return True
    if c in _LEFT_FUNCTION:
        return True
    return _LEFT_CONTEXT.search(text, max(0, start - 6), start) is not None


def _right_ok(text: str, end: int) -> bool:
    if end >= len(text):
        return True
    c = text[end]
    if not ("\u3400" <= c <= "\u9fff"):
        return True
    if c in _RIGHT_FUNCTION:
        return True
    return _RIGHT_CONTEXT.match(text, end) is not None


_BETWEEN = frozenset(
    _words(
        "今天 明天 昨天 后天 前天 今日 明日 昨日 上午 下午 晚上 早上 中午 刚才 刚刚 已经 曾经"
        " 一直 也 都 又 还 就 再 已 曾 将 才 刚 均 亦 当场 本人 亲自 再次 多次 曾于 于"
    )
)
_LEFT_FUNCTION = frozenset("的和与跟同对给叫让被把找问向请是为由及或称位名致令派")
_RIGHT_FUNCTION = frozenset(
    "的说和与跟及等在是于今昨明前后曾已也都就又还再才刚将要会因从向到对给被把称"
)


def _before_anchor(text: str, end: int, t: _Tables, anchor: int | None = None) -> Finding | None:
    a = _ANCHOR_AFTER.match(text, end if anchor is None else anchor)
    if a is None:
        return None
    if a["title"]:
        strength = 0.5
    elif a["sex"]:
        strength = 0.45
    elif a["verb"] in ("说", "称"):
        strength = 0.25
    else:
        strength = 0.35
    best: tuple[float, int] | None = None
    compound_at = -2  # where a compound surname begins (夏侯惇: not 侯惇)
    for length in (4, 3, 2):
        start = end - length
        if start < 0 or start == compound_at + 1:
            continue
        cand = text[start:end]
        if not _CJK_RUN.fullmatch(cand):
            continue
        slen = _surname_len(cand)
        if not slen or len(cand) - slen > 2 or (length == 4 and slen != 2):
            continue
        given = cand[slen:]
        g = _given_ok(given, t)
        if not g:
            continue
        if slen == 2:
            compound_at = start
        penalty = _word_penalty(text, start, cand, t)
        if penalty >= 1.0 and not (a["title"] and (t.lexicon.get(cand) or (0, ""))[0] < 2000):
            continue
        score = strength + 0.25 * _surname_prior(cand, slen) + 0.2 * g - 0.4 * penalty
        if _left_ok(text, start):
            score += 0.15
        elif length == 2 and text[start - 1] in _SURNAME_SET:
            score -= 0.05
        if best is None or score > best[0] + 0.001:
            best = (score, start)
    if best is None or best[0] < 0.6:
        return None
    return Finding(best[1], end, "PERSON", round(min(0.97, best[0]), 2))


def _a_word(cand: str, t: _Tables) -> bool:
    """A dictionary word that is no name (高兴; 谢谢, which jieba tags nr but is frequent)."""
    entry = t.lexicon.get(cand)
    if entry is not None and (not entry[1].startswith("nr") or entry[0] > _FREQUENT):
        return True
    return cand in t.common


_FREQUENT = 300  # a name standing alone is rarely this frequent in jieba's dictionary


_ROLE_NOUNS = (
    "管家",
    "骑手",
    "快递员",
    "配送员",
    "司机",
    "保安",
    "保洁",
    "客服",
    "护工",
    "前台",
)


def _after_label(
    text: str,
    start: int,
    label: str,
    label_start: int,
    t: _Tables,
    memo: dict[tuple[int, bool, bool], Finding | None] | None = None,
) -> Finding | None:
    """The name right after ``label`` (which ends at ``start``), if one is there. What the
    label changes is whether it is strong evidence and whether it is a title: ``memo``
    keeps the answer for a position and those two, for the other scans that find the same
    place (联系人： is a label and a role's colon)."""
    if label in _WEAK_LABELS and label_start > 0:
        # 致 (to) and 客户 are evidence at a line's or a clause's start only.
        before = text[label_start - 1]
        if _CJK_RE.match(before) and before not in "的":
            return None
    strong = label not in _WEAK_LABELS and label not in _TITLE_SET
    title = label in _TITLE_SET
    if memo is None:
        return _name_after(text, start, strong, title, t)
    key = (start, strong, title)
    if key in memo:
        return memo[key]
    found = memo[key] = _name_after(text, start, strong, title, t)
    return found


def _name_after(text: str, start: int, strong: bool, title: bool, t: _Tables) -> Finding | None:
    if text.startswith(_ROLE_NOUNS, start):
        return None  # 联系人：管家沈辉敏: the name comes after the role
    first = text[start]
    compound = text[start : start + 2] in _COMPOUND_SET
    if title and (first in _LEFT_FUNCTION or not (first in _STRONG_SET or compound)):
        return None  # 张经理和王总: a title, then a conjunction
    run = _CJK_RUN.match(text, start, start + 4)  # a name is Chinese characters only
    if run is None or run.end() - start < 2:
        return None
    surname = first in _SURNAME_SET
    best: tuple[float, int] | None = None
    words: tuple[_Entry, _Entry, _Entry] | None = None  # the lexicon on 2, 3, 4 characters
    for length in _LENGTHS[run.end() - start]:
        # The surname: a compound one (欧阳) when a given name follows it, else one character.
        slen = 2 if compound and length >= 3 else 1 if surname else 0
        if not slen or length - slen > 2 or (length == 4 and slen != 2):
            continue
        cand = text[start : start + length]
        g = _given_ok(cand[slen:], t)
        if not g:
            continue
        if words is None:
            lexicon = t.lexicon
            words = (
                lexicon.get(text[start : start + 2]),
                lexicon.get(text[start : start + 3]),
                lexicon.get(text[start : start + 4]),
            )
        penalty = _penalty_of(length, *words)
        score = (0.45 if strong else 0.3) + 0.2 * _surname_prior(cand, slen) + 0.2 * g
        score -= 0.5 * penalty
        end = start + length
        if _right_ok(text, end):
            score += 0.2
        elif length - slen == 2 and text[end - 1 : end + 1] in t.common:
            score -= 0.2  # 王芳今日: the third character starts a word
        if best is None or score > best[0] + 0.001:
            best = (score, end)
    if best is None or best[0] < 0.6:
        return None
    return Finding(start, best[1], "PERSON", round(min(0.95, best[0]), 2))


# The lengths a name may have, longest first, by how many Chinese characters there are.
_LENGTHS = {2: (2,), 3: (3, 2), 4: (4, 3, 2)}


def _bounded(text: str, start: int, end: int, t: _Tables) -> Finding | None:
    cand = text[start:end]
    slen = _surname_len(cand)
    if not slen:
        return None
    given = cand[slen:]
    if not given or len(given) > 2:
        return None
    if (start and text[start - 1] in "·•") or (end < len(text) and text[end] in "·•"):
        return None  # a transliterated foreign name's part
    g = _given_ok(given, t)
    if g < 0.5:
        return None
    entry = t.lexicon.get(cand)
    if entry is not None and not (entry[1] == "nr" and entry[0] < 300):
        return None
    if _word_penalty(text, start, cand, t) > 0:
        return None
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    listed = before in "、" or after in "、"
    if before and before in _BOUND_FUNCTION:
        # After 是/叫/和: only a clear name (a top surname, name characters, no word).
        if slen != 1 or cand[0] not in _STRONG_SET or not all(c in _GIVEN for c in given):
            return None
        if given in t.common or cand in t.common or after in "的":
            return None
        return Finding(start, end, "PERSON", 0.65)
    prior = _surname_prior(cand, slen)
    if slen == 1 and cand[0] not in _STRONG_SET and not listed:
        return None
    if len(given) == 1:
        # Two characters alone are a name only in a list of names (张伟、王芳).
        if not listed or prior < 1.0 or given not in _GIVEN:
            return None
        if cand in t.common:
            return None
        return Finding(start, end, "PERSON", 0.7)
    if g < 0.8 and not (entry and entry[1] == "nr"):
        return None
    if before in '“"《「『【' or after in '”"》」』】':
        return None  # a quoted word or a title
    if given in t.common and not listed:
        return None  # 国庆, 建设: a word after a surname character is a phrase as often
    return Finding(start, end, "PERSON", 0.75 if listed else 0.65)


# ------------------------------------------------------------------ structured names


def _structured_names(text: str, t: _Tables) -> list[Finding]:
    found: list[Finding] = []
    if '"' in text or "'" in text:
        for m in _JSON_NAME.finditer(text):
            f = _name_value(m.group(1), m.start(1), t)
            if f:
                found.append(f)
    for m in _HEADER.finditer(text):
        start, end = m.start(), m.end()
        before = text[start - 1] if start else "\n"
        after = text[end] if end < len(text) else "\n"
        if (before in _CELL_EDGE or before == "\n") and (after in _CELL_EDGE or after in "\r\n"):
            found += _table_column(text, m, t)
    return found


def _name_value(value: str, at: int, t: _Tables) -> Finding | None:
    """A field's whole value (trimmed) when it has the shape of a name."""
    stripped = value.strip(" \t\"'")
    if not stripped:
        return None
    at += value.index(stripped)
    if _HAN_NAME_VALUE.fullmatch(stripped):
        slen = _surname_len(stripped)
        if not slen or not 1 <= len(stripped) - slen <= 2:
            return None
        if not _given_ok(stripped[slen:], t):
            return None
        if _word_penalty(stripped, 0, stripped, t) >= 0.6:
            return None  # {"name": "高级版"}, a word
        return Finding(at, at + len(stripped), "PERSON", 0.9)
    if _EN_NAME_VALUE.fullmatch(stripped):
        keys = [_plain(w) for w in stripped.split()]
        if any(k in _EN_STOP for k in keys):
            return None
        # A name field holds project and product names too: a known first name, or a
        # pinyin name, or a census surname last.
        if not (
            keys[0] in t.first_names
            or keys[0] in _PINYIN_SURNAMES
            or keys[-1] in _PINYIN_SURNAMES
            or t.last_names.get(keys[-1], 99999) <= 20000
        ):
            return None
        return Finding(at, at + len(stripped), "PERSON", 0.85)
    return None


def _table_column(text: str, m: re.Match[str], t: _Tables) -> list[Finding]:
    line_start = text.rfind("\n", 0, m.start() + 1) + 1
    line_end = text.find("\n", m.end())
    if line_end < 0:
        line_end = len(text)
    header = text[line_start:line_end].rstrip("\r")
    sep = next((s for s in ("\t", "|", ",", "，", ";", "；") if s in header), None)
    if sep is None:
        return []
    names = [h.strip(" \t\"'") for h in header.split(sep)]
    key_at = m.group(0)
    try:
        column = names.index(key_at)
    except ValueError:
        return []
    found: list[Finding] = []
    pos = line_end + 1
    rows = 0
    while pos < len(text) and rows < 10_000:
        nl = text.find("\n", pos)
        stop = len(text) if nl < 0 else nl
        line = text[pos:stop].rstrip("\r")
        if not line.strip() or line.count(sep) != header.count(sep):
            break
        cells = line.split(sep)
        offset = pos + sum(len(c) + len(sep) for c in cells[:column])
        if set(cells[column].strip()) <= set("-:| "):
            pos = stop + 1
            continue  # a Markdown table's rule
        f = _name_value(cells[column], offset, t)
        if f:
            found.append(f)
        rows += 1
        pos = stop + 1
    return found
