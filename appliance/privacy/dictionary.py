"""CUSTOM findings: dictionary terms (project code names, client lists) in one pass.

An Aho-Corasick automaton (pyahocorasick) finds every term at once, however many there are.
Matching ignores case; a character whose lower case is longer (``İ``) stays as it is, so
offsets stay valid and a match never depends on text elsewhere. A term written in ASCII
letters or digits is not taken from inside a longer word.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import ahocorasick

from appliance.privacy.detectors import Finding, bounded_word


class Dictionary:
    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = sorted({t.strip() for t in terms if t.strip()})
        self.longest = max(map(len, self.terms), default=0)
        self._automaton = ahocorasick.Automaton()
        for term in self.terms:
            self._automaton.add_word(term.lower(), len(term))
        if self.terms:
            self._automaton.make_automaton()

    def __bool__(self) -> bool:
        return bool(self.terms)

    def open_tail(self, text: str) -> int:
        """The length of the longest tail of ``text`` that a term starts with (or is): a
        stream must wait for what follows before it can tell."""
        for length in range(min(self.longest, len(text)), 0, -1):
            if self._automaton.match(_lower_in_place(text[-length:])):
                return length
        return 0

    def find(self, text: str) -> Iterator[Finding]:
        if not self.terms:
            return
        for end, length in self._automaton.iter(_lower_in_place(text)):
            start, stop = end - length + 1, end + 1
            if bounded_word(text, start, stop):
                yield Finding(start, stop, "CUSTOM")


def _lower_in_place(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)
