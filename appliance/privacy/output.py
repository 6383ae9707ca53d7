"""Personal data the model wrote itself, found in whole answers and in streams.

A stream cannot be scanned piece by piece: a phone number may arrive in three chunks, and
whether ``6222 0212 3456 7894`` is a card depends on whether `` 5`` follows. So
``StreamScanner`` releases text only up to a *safe cut*: a point no value can cross and
that nothing after it can change. That is right after a character no value contains (most
Chinese characters, punctuation such as ``，`` or ``!``, a newline), or after a space that
ends a word with no digit in it (nor an IBAN-like group of capitals, nor a plate's
``京A``). Context rules and dictionary terms need a little text on either side, so the cut
also stays ``reach`` characters (and a term's length) short of the end, and is never inside
a dictionary term. Findings are then taken from the released part with the same ``find`` a
whole answer uses, on a window that includes the context around it: the concatenation of
what a stream releases equals what ``scan`` gives for the whole answer.

Text with no safe cut for ``MAX_HOLD`` characters (a very long run of digits and letters)
is released anyway, so a stream can never stall on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.privacy.detectors import FOLD, PROVINCES, Finding
from appliance.privacy.policy import PrivacyPolicy
from appliance.privacy.transform import mask

MAX_HOLD = 512
_SPACES = " \u3000"
# Every character a value of some type can contain: digits and letters (ASCII and
# full-width), the separators numbers are written with, an email's symbols, a plate's.
VALUE_CHARS = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    "-.:()+@%_·•挂学警港澳" + _SPACES + PROVINCES + "".join(map(chr, FOLD))
)


def scan(text: str, find: Callable[[str], list[Finding]], action: str) -> tuple[str, list[Finding]]:
    """The answer with what ``find`` finds masked (``action`` mask) or left (flag)."""
    found = find(text)
    return (_masked(text, found) if action == "mask" and found else text), found


def _masked(text: str, found: list[Finding]) -> str:
    pieces, last = [], 0
    for f in found:
        pieces += [text[last : f.start], mask(text[f.start : f.end], f.type)]
        last = f.end
    return "".join(pieces) + text[last:]


def stream_scanner(policy: PrivacyPolicy, action: str) -> StreamScanner:
    """A scanner that finds what ``scan(text, policy.find, action)`` finds, in a stream."""
    dictionary = policy.dictionary
    return StreamScanner(
        policy.find,
        action,
        reach=policy.context.reach if policy.context else 0,
        terms=(lambda text: list(dictionary.find(text))) if dictionary else None,
        longest_term=dictionary.longest,
    )


@dataclass
class StreamScanner:
    """``feed`` pieces of one answer, ``flush`` at its end; each returns text to send."""

    find: Callable[[str], list[Finding]]
    action: str  # mask | flag
    reach: int = 0  # the context rules' window
    terms: Callable[[str], list[Finding]] | None = None  # the dictionary's raw matches
    longest_term: int = 0
    found: list[Finding] = field(default_factory=list)  # offsets into the released window
    _buf: str = ""
    _ctx: int = 0  # leading characters of _buf already released, kept as context

    def feed(self, piece: str) -> str:
        self._buf += piece
        cut = self._safe_cut()
        return self._release(cut) if cut > self._ctx else ""

    def flush(self) -> str:
        return self._release(len(self._buf)) if len(self._buf) > self._ctx else ""

    def _release(self, cut: int) -> str:
        window = self._buf[: cut + self.reach]
        mine = [f for f in self.find(window) if f.start >= self._ctx and f.end <= cut]
        self.found += mine
        text = self._buf[:cut]
        if self.action == "mask" and mine:
            text = _masked(text, mine)
        released = text[self._ctx :]
        keep = min(cut, max(self.reach, 2))
        self._buf, self._ctx = self._buf[cut - keep :], keep
        return released

    def _safe_cut(self) -> int:
        limit = len(self._buf) - max(self.reach, self.longest_term - 1, 0)
        cut = self._cut_before(limit)
        if self.terms is not None and cut > self._ctx:
            for term in sorted(self.terms(self._buf), key=lambda t: -t.start):
                if term.start < cut < term.end:
                    cut = self._cut_before(term.start)
        if cut <= self._ctx and len(self._buf) - self._ctx > MAX_HOLD:
            return max(limit, self._ctx + 1)
        return cut

    def _cut_before(self, limit: int) -> int:
        """The last safe cut at or before ``limit`` (``_ctx`` where there is none)."""
        buf = self._buf
        for p in range(min(limit, len(buf)), self._ctx, -1):
            ch = buf[p - 1]
            if ch not in VALUE_CHARS:
                return p
            if ch in _SPACES and _word_ends_nothing(buf, p - 1):
                return p
        return self._ctx


def _word_ends_nothing(buf: str, space: int) -> bool:
    """The word before ``buf[space]`` can neither be nor start a value going on after it."""
    start = space
    while start > 0 and buf[start - 1] not in _SPACES and buf[start - 1] in VALUE_CHARS:
        start -= 1
    word = buf[start:space].translate(FOLD)
    if any(ch.isdigit() for ch in word):
        return False
    if len(word) <= 4 and word.isascii() and word.isupper():  # an IBAN's group of capitals
        return False
    return not (len(word) >= 2 and word[-2] in PROVINCES and word[-1].isupper())
