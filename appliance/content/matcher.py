"""Every term of a content policy in one Aho-Corasick automaton (ahocorasick-rs, Rust: a
DFA over the squeezed view of a text, ``normalize``); regexes over its folded view.

A hit of the automaton is a finding when the text around it agrees:

- a term that begins (ends) with a Latin letter or digit matches whole words only: the
  text's character before (after) it is not one (``ass`` is no hit in ``class``);
- inside a hit, a Latin word of two letters or more must be one of the term's own words:
  letters spelt apart (``h e r o i n``) join up, words of the text do not (``hero in``);
  hyphens, dots and the like inside a word do not end it (``dis-re-gard``);
- a hit inside an allow-listed word of its category is none (``反赌博`` for 赌博);
- of two hits of one category where one holds the other, the longer is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ahocorasick_rs

from appliance.content import normalize
from appliance.content.normalize import View

if TYPE_CHECKING:
    from appliance.content.policy import ContentPolicy

MAX_PINYIN_READINGS = 4  # of one term with characters of several readings
# Punctuation that splits a word without ending it (dis-re-gard, o.n.l.i.n.e, b_o_m_b).
INSIDE_WORDS = frozenset("-_.'*·‐‑–~^|/\\+")


@dataclass(frozen=True, slots=True)
class Entry:
    category: int
    length: int  # in the squeezed view
    term: str  # as written
    source: str  # term, file, pattern, pinyin, allow, canary
    latin_start: bool
    latin_end: bool
    bounds: frozenset[int]  # where the term's own words begin and end (squeezed)
    allow: bool = False
    part: tuple[int, int] | None = None  # (sequence, part) of a sequence's word


@dataclass(frozen=True, slots=True)
class Hit:
    category: int
    start: int  # in the text
    end: int
    term: str
    source: str
    view_start: int = 0
    view_end: int = 0


def _entry(
    category: int,
    term: str,
    source: str,
    *,
    allow: bool = False,
    part: tuple[int, int] | None = None,
) -> Entry | None:
    key = normalize.squeeze(term)
    if not key:
        return None
    bounds, at = {0}, 0
    latin: bool | None = None  # of the last character kept
    for ch in term:
        if normalize.is_separator(ch):
            bounds.add(at)
            latin = None
            continue
        if normalize.is_invisible(ch):
            continue
        now = normalize.is_word_char(ch)
        if latin is not None and now != latin:
            bounds.add(at)  # a Latin word begins or ends beside a Chinese character
        latin = now
        at += 1
    bounds.add(len(key))
    stripped = [c for c in term if not normalize.is_separator(c)]
    return Entry(
        category,
        len(key),
        term,
        source,
        normalize.is_word_char(stripped[0]),
        normalize.is_word_char(stripped[-1]),
        frozenset(bounds),
        allow,
        part,
    )


def pinyin_readings(term: str) -> list[str]:
    """A Chinese term's pinyin, syllables apart, without tones (a few readings at most)."""
    import pypinyin

    if not any("\u3400" <= c <= "\u9fff" for c in term):
        return []
    syllables = pypinyin.pinyin(term, style=pypinyin.Style.NORMAL, heteronym=True, errors="ignore")
    readings: list[str] = []

    def walk(i: int, done: list[str]) -> None:
        if len(readings) >= MAX_PINYIN_READINGS:
            return
        if i == len(syllables):
            readings.append(" ".join(done))
            return
        for option in syllables[i][:2]:
            walk(i + 1, [*done, option])

    walk(0, [])
    return readings


class TermMatcher:
    """The automaton of one policy (built once: about 1 s a 100,000 terms)."""

    def __init__(self, policy: ContentPolicy, extra: Sequence[tuple[int, str, str]] = ()) -> None:
        by_key: dict[str, list[Entry]] = {}

        def add(entry: Entry | None) -> None:
            if entry is None:
                return
            key_entries = by_key.setdefault(normalize.squeeze(entry.term), [])
            same = (entry.category, entry.allow, entry.bounds, entry.part)
            if all((e.category, e.allow, e.bounds, e.part) != same for e in key_entries):
                key_entries.append(entry)

        for term in policy.terms:
            add(_entry(term.category, term.text, term.source))
            if policy.categories[term.category].pinyin:
                for reading in pinyin_readings(term.text):
                    add(_entry(term.category, reading, "pinyin"))
        for i, category in enumerate(policy.categories):
            for allowed in category.allow:
                add(_entry(i, allowed, "allow", allow=True))
        self.sequences: list[tuple[int, int, int, bool]] = []  # category, parts, within, sentence
        for i, category in enumerate(policy.categories):
            for sequence in category.sequences:
                number = len(self.sequences)
                self.sequences.append((i, len(sequence.parts), sequence.within, sequence.sentence))
                for n, words in enumerate(sequence.parts):
                    for word in words:
                        add(_entry(i, word, "sequence", part=(number, n)))
        for number, word, source in extra:
            add(_entry(number, word, source))
        self.longest = max((len(k) for k in by_key), default=1)
        for _, parts, within, _ in self.sequences:  # what a stream must hold back for one
            self.longest = max(self.longest, parts * self.longest + (parts - 1) * within)
        self.keys = list(by_key)
        self.entries = [tuple(by_key[k]) for k in self.keys]
        self.empty = not by_key
        self.automaton = ahocorasick_rs.AhoCorasick(self.keys) if by_key else None
        self.regexes = policy.regexes

    def hits(self, text: str) -> list[Hit]:
        """The findings' hits in ``text``, in order (see the module's rules)."""
        found: list[Hit] = []
        if not self.empty:
            view = normalize.squeezed(text)
            allowed: dict[int, list[tuple[int, int]]] = {}
            candidates: list[tuple[int, int, Entry]] = []
            for number, start, end in self.find(view.view):
                for entry in self.entries[number]:
                    if entry.allow:
                        allowed.setdefault(entry.category, []).append((start, end))
                    else:
                        candidates.append((start, end, entry))
            parts: dict[tuple[int, int], list[Hit]] = {}
            for start, end, entry in candidates:
                spans = allowed.get(entry.category, ())
                if any(a <= start and end <= b for a, b in spans):
                    continue
                hit = self._check(text, view, start, end, entry)
                if hit is None:
                    continue
                if entry.part is None:
                    found.append(hit)
                else:
                    parts.setdefault(entry.part, []).append(hit)
            if parts:
                found.extend(self._chains(view.view, parts))
        if self.regexes:
            folded = normalize.folded(text)
            for category, regex in self.regexes:
                for match in regex.finditer(folded.view):
                    if match.end() > match.start():
                        start, end = folded.span(match.start(), match.end())
                        found.append(Hit(category, start, end, regex.pattern, "regex"))
        return _longest(found)

    def find(self, view: str) -> list[tuple[int, int, int]]:
        """(key, start, end) of every key in a squeezed view, overlapping ones too."""
        if self.automaton is None:
            return []
        found: list[tuple[int, int, int]] = self.automaton.find_matches_as_indexes(
            view, overlapping=True
        )
        return found

    def _chains(self, view: str, parts: dict[tuple[int, int], list[Hit]]) -> list[Hit]:
        """Each sequence's hits: a word of each part, in order, each within reach of the
        one before and in the same sentence."""
        chains = []
        for number, (category, count, within, sentence) in enumerate(self.sequences):
            words = [sorted(parts.get((number, n), []), key=lambda h: h.view_start)
                     for n in range(count)]  # fmt: skip
            if not all(words):
                continue
            for first in words[0]:
                last = _chain(view, words, 1, first, within, sentence)
                if last is not None:
                    chains.append(
                        Hit(category, first.start, last.end, first.term, "sequence",
                            first.view_start, last.view_end)
                    )  # fmt: skip
        return chains

    @staticmethod
    def _check(text: str, view: View, start: int, end: int, entry: Entry) -> Hit | None:
        o_start, o_end = view.span(start, end)
        if entry.latin_start and o_start > 0 and normalize.is_word_char(text[o_start - 1]):
            return None
        if entry.latin_end and o_end < len(text) and normalize.is_word_char(text[o_end]):
            return None
        # the Latin words inside the hit: each a word of the term, or one letter
        at, word_start, letters = start, start, 0
        for ch in text[o_start:o_end]:
            if normalize.is_invisible(ch) or (letters and ch in INSIDE_WORDS):
                continue  # a zero-width character, dis-re-gard's hyphens: still one word
            if normalize.is_separator(ch):
                if letters > 1 and not {word_start - start, at - start} <= entry.bounds:
                    return None
                word_start, letters = at, 0
                continue
            if normalize.is_word_char(ch):
                if letters == 0:
                    word_start = at
                letters += 1
            else:  # a Chinese character ends a Latin word
                if letters > 1 and not {word_start - start, at - start} <= entry.bounds:
                    return None
                letters = 0
            at += 1  # every character but a separator is one of the view
        if letters > 1 and not {word_start - start, at - start} <= entry.bounds:
            return None
        return Hit(entry.category, o_start, o_end, entry.term, entry.source, start, end)


def matcher_of(policy: ContentPolicy) -> TermMatcher:
    """The policy's matcher, built once (a policy is never changed: a reload is another)."""
    if policy.compiled is None:
        policy.compiled = TermMatcher(policy)
    matcher: TermMatcher = policy.compiled
    return matcher


def canary_matcher(policy: ContentPolicy, canary: str) -> TermMatcher:
    """The policy's matcher with an alias's canary as a term of ``system_prompt_leak``,
    built once per canary (a few per policy: one per alias that has one)."""
    cache: dict[str, TermMatcher] = policy.canaries
    if canary not in cache:
        cache[canary] = TermMatcher(policy, [(len(policy.names), canary, "canary")])
    return cache[canary]


def load_built(path: Path) -> ContentPolicy:
    """``load_content_policy`` with its automaton built: what a process loads at start-up
    and on a reload (in the watch's thread, so no request waits for it)."""
    from appliance.content.policy import load_content_policy

    policy = load_content_policy(path)
    matcher_of(policy)
    return policy


def _chain(
    view: str, words: list[list[Hit]], n: int, before: Hit, within: int, sentence: bool
) -> Hit | None:
    """The last word of a chain that goes on from ``before`` with part ``n``, or None."""
    if n == len(words):
        return before
    for hit in words[n]:
        gap = hit.view_start - before.view_end
        if gap < 0:
            continue
        if gap > within:
            break
        between = view[before.view_end : hit.view_start]
        if sentence and any(c in normalize.BOUNDARIES for c in between):
            break
        last = _chain(view, words, n + 1, hit, within, sentence)
        if last is not None:
            return last
    return None


def _longest(hits: list[Hit]) -> list[Hit]:
    """In text order; a hit held by a longer one of its category is dropped."""
    hits.sort(key=lambda h: (h.start, -(h.end - h.start), h.category))
    kept: list[Hit] = []
    for hit in hits:
        if any(
            k.category == hit.category and k.start <= hit.start and hit.end <= k.end
            for k in kept[-8:]
        ):
            continue
        kept.append(hit)
    return kept
