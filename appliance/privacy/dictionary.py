"""CUSTOM findings: dictionary terms (project code names, client lists) in one pass.

An Aho-Corasick automaton (pyahocorasick) finds every term at once, however many there are.
Matching ignores case where lower-casing keeps the text's length (offsets must stay valid),
and a term written in ASCII letters or digits is not taken from inside a longer word.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import ahocorasick

from appliance.privacy.detectors import Finding, bounded_word


class Dictionary:
    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = sorted({t.strip() for t in terms if t.strip()})
        self._automaton = ahocorasick.Automaton()
        for term in self.terms:
            self._automaton.add_word(term.lower(), len(term))
        if self.terms:
            self._automaton.make_automaton()

    def __bool__(self) -> bool:
        return bool(self.terms)

    def find(self, text: str) -> Iterator[Finding]:
        if not self.terms:
            return
        lowered = text.lower()
        haystack = lowered if len(lowered) == len(text) else text
        for end, length in self._automaton.iter(haystack):
            start, stop = end - length + 1, end + 1
            if bounded_word(text, start, stop):
                yield Finding(start, stop, "CUSTOM")
