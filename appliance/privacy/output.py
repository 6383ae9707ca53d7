"""Personal data the model wrote itself, found in whole answers and in streams.

A stream cannot be scanned piece by piece: a phone number may arrive in three chunks, and
whether ``6222 0212 3456 7894`` is a card depends on whether `` 5`` follows. So
``StreamScanner`` releases text only up to a *safe cut*: a point no value can cross and
that nothing after it can change. That is right after a character no value contains (most
Chinese characters, punctuation such as ``，`` or ``!``, a newline), or after a space that
no spaced value can run on across (the word before it cannot end a group of one, as
``the`` or ``apples.``, unlike ``138``, ``GB82`` or a plate's ``京A``; or what follows
cannot continue one, as the ``t`` of ``t0 t1``).
The cut also waits for a tail that could still start a dictionary term, is never inside
one, and comes before any finding a context rule scores until ``reach`` characters follow
it. Findings are taken from the released part with the same ``find`` a whole answer uses,
on a window that includes the context around it: the concatenation of what a stream
releases equals what ``scan`` gives for the whole answer.

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
_ASCII_VALUE_CHARS = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-.:()+@%_ "
)
VALUE_CHARS = frozenset(
    {ch for ch in map(chr, FOLD) if ch.translate(FOLD) in _ASCII_VALUE_CHARS}
    | _ASCII_VALUE_CHARS
    | set("·•挂学警港澳" + _SPACES + PROVINCES)
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
    """A scanner that finds what ``scan(text, policy.find_identifiers, action)`` finds, in a
    stream. Names and addresses are not looked for in answers: whether a run of Chinese
    characters is a name depends on text on both sides (labels, titles, table columns), so
    a stream could not release any of it safely; the caller's own are pseudonymized in the
    request and restored, and a model that makes up a name is not leaking one."""
    dictionary, context = policy.dictionary, policy.context
    return StreamScanner(
        policy.find_identifiers,
        action,
        reach=context.reach if context else 0,
        context_types=context.types if context else frozenset(),
        terms=(lambda text: list(dictionary.find(text))) if dictionary else None,
        open_term=dictionary.open_tail if dictionary else None,
    )


@dataclass
class StreamScanner:
    """``feed`` pieces of one answer, ``flush`` at its end; each returns text to send."""

    find: Callable[[str], list[Finding]]
    action: str  # mask | flag
    reach: int = 0  # the context rules' window
    context_types: frozenset[str] = frozenset()  # types the context rules score
    terms: Callable[[str], list[Finding]] | None = None  # the dictionary's matches
    open_term: Callable[[str], int] | None = None  # length of a tail that may start a term
    found: list[Finding] = field(default_factory=list)
    _buf: str = ""
    _ctx: int = 0  # leading characters of _buf already released, kept as context

    def feed(self, piece: str) -> str:
        self._buf += piece
        cut = self._safe_cut()
        if cut <= self._ctx and len(self._buf) - self._ctx > MAX_HOLD:
            cut = len(self._buf) - self.reach  # never stall on a run with no safe cut
            return self._release(cut, self._found(cut)) if cut > self._ctx else ""
        while cut > self._ctx:
            found = self._found(cut)
            # A finding a context rule scores needs ``reach`` characters after it.
            waiting = [
                f.start
                for f in found
                if f.type in self.context_types and f.end + self.reach > len(self._buf)
            ]
            if not waiting:
                return self._release(cut, found)
            cut = self._outside_terms(self._cut_before(min(waiting)))
        return ""

    def flush(self) -> str:
        end = len(self._buf)
        return self._release(end, self._found(end)) if end > self._ctx else ""

    def _found(self, cut: int) -> list[Finding]:
        window = self._buf[: cut + self.reach]
        return [f for f in self.find(window) if f.start >= self._ctx and f.end <= cut]

    def _release(self, cut: int, found: list[Finding]) -> str:
        self.found += found
        text = self._buf[:cut]
        if self.action == "mask" and found:
            text = _masked(text, found)
        released = text[self._ctx :]
        keep = min(cut, max(self.reach, 2))
        self._buf, self._ctx = self._buf[cut - keep :], keep
        return released

    def _safe_cut(self) -> int:
        limit = len(self._buf) - (self.open_term(self._buf) if self.open_term else 0)
        return self._outside_terms(self._cut_before(limit))

    def _outside_terms(self, cut: int) -> int:
        """``cut``, or the safe cut before a dictionary term it would split."""
        if self.terms is not None and cut > self._ctx:
            for term in sorted(self.terms(self._buf), key=lambda t: -t.start):
                if term.start < cut < term.end:
                    cut = self._cut_before(term.start)
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


# What a group of a value written with spaces can end with (``138 1234 5678``,
# ``(0755) 8888 6666``, ``+86 138``, ``GB82 WEST 1234``).
_GROUP_END = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+-:()")


def _word_ends_nothing(buf: str, space: int) -> bool:
    """Nothing that a value is can run on across ``buf[space]``.

    True when what follows the space cannot continue a spaced value (a lower-case letter,
    or a character no value has), or when the word before it does not end the way a
    group of one does (``the``, ``apples.``), nor is a plate's ``京A``.
    """
    if space + 1 < len(buf):
        after = buf[space + 1].translate(FOLD)
        if after not in VALUE_CHARS or after.islower():
            return True
    start = space
    while start > 0 and buf[start - 1] not in _SPACES and buf[start - 1] in VALUE_CHARS:
        start -= 1
    word = buf[start:space].translate(FOLD)
    if word and word[-1] in _GROUP_END:
        return False
    return not (len(word) >= 2 and word[-2] in PROVINCES and word[-1].isupper())
