"""A small reference matcher for the acceptance policy: make_cases.py's self-check only.

It is written from the content-safety contract (not from ``appliance/``) and is only as
complete as ``cases.jsonl`` needs: the tests never import it. What it implements, which
is what the cases expect:

* Each character is normalised on its own (so offsets map back one to one): NFKC
  (full-width to half-width), lower case, traditional to simplified (a table of the
  characters the cases use), Cyrillic homoglyphs а е о с р to Latin, and the substitutions
  0→o 1→i/l 3→e 4→a 5→s 7→t @→a $→s (i, l and 1 compare equal).
* Zero-width characters (U+200B/C/D, U+FEFF) are ignored everywhere. Other separators
  (white space, punctuation, symbols) inside a term are skipped between two Chinese
  characters, and between Latin characters when the text is spaced out (one of the two
  runs the separator splits is a single character: "h e r o i n", "o.n.l.i.n.e"), never
  between two real words ("hero in"). A separator in the term (the space of "online
  casino", the hyphen of "Project BLUEFIN-17") matches any run of separators.
* A term that begins (ends) with a Latin letter or digit needs a word boundary there:
  no Latin letter or digit before (after) it. A Chinese character is a boundary.
* ``allow`` words are matched the same way; a hit inside one is dropped.
* ``pinyin``: toneless syllables of each Chinese term, with or without spaces between
  them, as whole words in Latin text (tone marks stripped). Chinese homophones never match.
* ``regexes`` run on the text normalised character by character (NFKC, lower case,
  traditional to simplified), separators kept.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import NamedTuple

import yaml

ZERO_WIDTH = frozenset("\u200b\u200c\u200d\ufeff")
HOMOGLYPHS = {"а": "a", "е": "e", "о": "o", "с": "c", "р": "p"}
SUBSTITUTIONS = {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
T2S = dict(
    zip(
        "網絡賭場搖頭製彈殺腦殘癡辦證開發稅計劃龍項雲煩線個這裡買細節預算發佈後網請傳",
        "网络赌场摇头制弹杀脑残痴办证开发税计划龙项云烦线个这里买细节预算发布后网请传",
        strict=True,
    )
)
PINYIN = {"赌": "du", "博": "bo", "球": "qiu"}


class Finding(NamedTuple):
    category: str
    start: int
    end: int


class Char(NamedTuple):
    value: str  # normalised, one character
    index: int  # offset in the original text
    kind: str  # "latin" (ASCII letter or digit), "cjk" or "other"
    gap: str  # what precedes it since the previous Char: "sep", "zw" or ""


def _normalise_one(ch: str) -> str:
    n = unicodedata.normalize("NFKC", ch)
    if len(n) != 1:
        n = ch
    low = n.lower()
    n = low if len(low) == 1 else n
    n = T2S.get(n, n)
    n = HOMOGLYPHS.get(n, n)
    n = SUBSTITUTIONS.get(n, n)
    return "l" if n == "i" else n  # i, l (and 1) compare equal


def is_separator(ch: str) -> bool:
    if ch in ZERO_WIDTH:
        return True
    n = unicodedata.normalize("NFKC", ch)[:1] or ch
    if n in SUBSTITUTIONS:
        return False
    return n.isspace() or unicodedata.category(n)[0] in "PSZ"


def _kind(n: str) -> str:
    if n.isascii() and n.isalnum():
        return "latin"
    if "\u3400" <= n <= "\u9fff" or "\U00020000" <= n <= "\U0003134f":
        return "cjk"
    return "other"


def skeleton(text: str) -> list[Char]:
    chars: list[Char] = []
    gap = ""
    for index, ch in enumerate(text):
        if ch in ZERO_WIDTH:
            gap = gap or "zw"
        elif is_separator(ch):
            gap = "sep"
        else:
            n = _normalise_one(ch)
            chars.append(Char(n, index, _kind(n), gap))
            gap = ""
    return chars


class Term(NamedTuple):
    chars: tuple[str, ...]
    term_gaps: tuple[bool, ...]  # term_gaps[j]: a separator before chars[j] in the term
    first_latin: bool
    last_latin: bool


def compile_term(term: str) -> Term:
    sk = skeleton(term)
    assert sk, term
    return Term(
        tuple(c.value for c in sk),
        tuple(c.gap == "sep" for c in sk),
        sk[0].kind == "latin",
        sk[-1].kind == "latin",
    )


def _runs(text: list[Char], k: int, m: int) -> list[int]:
    """For each position of text[k:k+m], the length of its run between visible separators."""
    lengths, start = [0] * m, 0
    for j in range(1, m + 1):
        if j == m or text[k + j].gap == "sep":
            for x in range(start, j):
                lengths[x] = j - start
            start = j
    return lengths


def match_at(text: list[Char], k: int, term: Term) -> tuple[int, int] | None:
    m = len(term.chars)
    if k + m > len(text) or tuple(c.value for c in text[k : k + m]) != term.chars:
        return None
    runs = _runs(text, k, m)
    for j in range(1, m):
        here, prev = text[k + j], text[k + j - 1]
        if term.term_gaps[j]:
            if here.gap != "sep":
                return None
        elif here.gap == "sep" and not (prev.kind == here.kind == "cjk"):
            spaced_out = runs[j - 1] == 1 or runs[j] == 1  # else two real words
            if not spaced_out:
                return None
    if term.first_latin and k > 0 and text[k].gap != "sep" and text[k - 1].kind == "latin":
        return None
    end = k + m
    if term.last_latin and end < len(text) and text[end].gap != "sep" and text[end].kind == "latin":
        return None
    return text[k].index, text[end - 1].index + 1


def _regex_char(ch: str) -> str:
    n = unicodedata.normalize("NFKC", ch)
    n = n if len(n) == 1 else ch
    low = n.lower()
    n = low if len(low) == 1 else n
    return T2S.get(n, n)


def _strip_tones(text: str) -> str:
    out = []
    for ch in text:
        base = unicodedata.normalize("NFD", ch)[0] if ch.isalpha() and ord(ch) < 0x250 else ch
        out.append(base.lower() if len(base.lower()) == 1 else base)
    return "".join(out)


class Category:
    def __init__(self, spec: dict, base: Path) -> None:
        self.name = spec["name"]
        words = list(spec.get("terms", []))
        for name in spec.get("term_files", []):
            for line in (base / name).read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    words.append(line)
        self.terms = [compile_term(t) for t in words]
        self.allow = [compile_term(t) for t in spec.get("allow", [])]
        self.regexes = [re.compile(r) for r in spec.get("regexes", [])]
        self.pinyin = []
        if spec.get("pinyin"):
            for t in words:
                if all(_kind(ch) == "cjk" for ch in t):
                    syllables = [PINYIN[ch] for ch in t]
                    self.pinyin.append(
                        re.compile(r"(?<![a-z0-9])" + " *".join(syllables) + r"(?![a-z0-9])")
                    )
        self.index: dict[tuple[str, ...], list[Term]] = {}
        for term in self.terms:
            self.index.setdefault(term.chars[:2], []).append(term)


class Matcher:
    def __init__(self, policy: Path) -> None:
        spec = yaml.safe_load(policy.read_text(encoding="utf-8"))
        self.categories = [Category(c, policy.parent) for c in spec["categories"]]

    def scan(self, text: str) -> list[Finding]:
        sk = skeleton(text)
        regex_text = "".join(_regex_char(ch) for ch in text)
        toneless = _strip_tones(text)
        found: list[Finding] = []
        for cat in self.categories:
            spans: set[tuple[int, int]] = set()
            for k in range(len(sk)):
                for term in cat.index.get(tuple(ch.value for ch in sk[k : k + 2]), []):
                    span = match_at(sk, k, term)
                    if span:
                        spans.add(span)
            for rx in cat.regexes:
                spans.update(mt.span() for mt in rx.finditer(regex_text))
            for rx in cat.pinyin:
                spans.update(mt.span() for mt in rx.finditer(toneless))
            allowed = []
            for word in cat.allow:
                for k in range(len(sk)):
                    span = match_at(sk, k, word)
                    if span:
                        allowed.append(span)
            for start, end in sorted(spans):
                if not any(a <= start and end <= b for a, b in allowed):
                    found.append(Finding(cat.name, start, end))
        return found
