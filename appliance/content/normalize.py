"""Two folded views of a text, each one ``str.translate`` away, with a map back to it.

Terms are matched on the *squeezed* view, in which the forms people use to slip a word
past a filter all read the same:

- traditional Chinese as simplified (OpenCC's t2s table, character by character: 網絡賭博
  reads 网络赌博);
- full-width as half-width, and compatibility forms as their plain letters (NFKC);
- case (casefold), and Latin letters without their accents (dǔ bó reads du bo);
- homoglyphs: Cyrillic and Greek letters that look Latin (Cyrillic а е о с р read a e o c p);
- digit and symbol substitutions: 0 o, 1 l i, 3 e, 4 @ a, 5 $ s, 7 t all read as one letter
  each (the skeleton is lossy on purpose: ``l`` and ``i`` read the same);
- separators dropped: spaces, punctuation, symbols and zero-width characters between the
  characters (敏 感 词, 敏*感*词, 敏、感、词, o.n.l.i.n.e). Sentence punctuation (，。！？；： and
  their ASCII forms) and line breaks stay: a term is never matched across a sentence.

Regexes run on the *folded* view: the first four only, with spaces, punctuation and
digits where they were (a regex means what its author wrote), zero-width characters gone.

Every character of a view comes from one character of the text (each mapping is one
character to one, or to none), so a span in a view maps back to the text exactly.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

# Letters of other scripts drawn like Latin ones (after casefolding).
HOMOGLYPHS = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ɑ": "a", "ı": "i",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
}  # fmt: skip
# Digits and symbols written for letters; l and i are one letter of the skeleton.
SUBSTITUTIONS = {
    "0": "o", "1": "i", "l": "i", "3": "e", "4": "a", "@": "a", "5": "s", "$": "s", "7": "t",
}  # fmt: skip
# Punctuation that ends a sentence or a clause, and line breaks: never dropped.
BOUNDARIES = frozenset(",;:!?。\n\r\u2028\u2029\x0b\x0c\x1c\x1d\x1e\x85")
ZERO_WIDTH_CATEGORIES = ("Cf", "Cc", "Mn", "Me")


def _is_cjk(cp: int) -> bool:
    return 0x3400 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF


@functools.cache
def _simplified() -> dict[int, str]:
    """OpenCC's t2s conversion of each CJK character that it changes to one character."""
    import opencc

    chars = [chr(cp) for cp in range(0x3400, 0xFB00) if _is_cjk(cp)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):  # never seen: then convert one at a time
        converted = [opencc.OpenCC("t2s").convert(c) for c in chars]
    return {ord(c): s for c, s in zip(chars, converted, strict=True) if len(s) == 1 and s != c}


def _fold(ch: str, simplified: dict[int, str]) -> str:
    """One character through t2s, NFKC, casefold, accents and homoglyphs (or itself)."""
    ch = simplified.get(ord(ch), ch)
    steps: tuple[Callable[[str], str], ...] = (
        lambda c: unicodedata.normalize("NFKC", c),
        str.casefold,
        _strip_accent,
        lambda c: HOMOGLYPHS.get(c, c),
    )
    for step in steps:
        out = step(ch)
        if len(out) == 1:
            ch = out
    return ch


def _strip_accent(ch: str) -> str:
    decomposed = unicodedata.normalize("NFD", ch)
    accents = decomposed[1:]
    if accents and decomposed[0].isascii() and all(unicodedata.combining(c) for c in accents):
        return decomposed[0]
    return ch


def _dropped_in_folded(ch: str) -> bool:
    """Invisible: zero-width and other format characters, controls but line breaks."""
    return (
        unicodedata.category(ch) in ZERO_WIDTH_CATEGORIES
        and ch not in BOUNDARIES
        and (ch not in "\t")
    )


def _separator(folded: str) -> bool:
    """Dropped from the squeezed view: spaces, punctuation and symbols but boundaries."""
    if folded in BOUNDARIES or folded in SUBSTITUTIONS:
        return False
    category = unicodedata.category(folded)
    return category[0] in "ZPS" or category in ZERO_WIDTH_CATEGORIES


@dataclass(frozen=True)
class Tables:
    folded: dict[int, int | None]
    squeezed: dict[int, int | None]
    folded_dropped: re.Pattern[str]  # runs of what the folded view drops
    squeezed_dropped: re.Pattern[str]


def _char_class(cps: list[int]) -> re.Pattern[str]:
    ranges: list[tuple[int, int]] = []
    for cp in cps:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return re.compile(f"[{parts}]+")


@functools.cache
def tables() -> Tables:
    """Built once per process (about a second): every BMP character's two foldings."""
    simplified = _simplified()
    folded: dict[int, int | None] = {}
    squeezed: dict[int, int | None] = {}
    folded_drop: list[int] = []
    squeezed_drop: list[int] = []
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        if _dropped_in_folded(ch):
            folded[cp] = squeezed[cp] = None
            folded_drop.append(cp)
            squeezed_drop.append(cp)
            continue
        f = _fold(ch, simplified)
        folded[cp] = ord(f)
        if _separator(f):
            squeezed[cp] = None
            squeezed_drop.append(cp)
        else:
            squeezed[cp] = ord(SUBSTITUTIONS.get(f, f))
    return Tables(folded, squeezed, _char_class(folded_drop), _char_class(squeezed_drop))


@dataclass
class View:
    """A folded view of ``text``; ``origin(i)`` is where its character ``i`` came from."""

    text: str  # the original
    view: str
    dropped: re.Pattern[str]
    _runs: tuple[list[int], list[int]] | None = field(default=None, repr=False)

    def origin(self, index: int) -> int:
        """The text's index of the view's character ``index``."""
        at, before = self._dropped_runs()
        # the last run that starts at or before this character's place in the view
        k = bisect.bisect_right(at, index) - 1
        return index + (before[k] if k >= 0 else 0)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The text's span of the view's ``[start, end)`` (``end > start``)."""
        return self.origin(start), self.origin(end - 1) + 1

    def _dropped_runs(self) -> tuple[list[int], list[int]]:
        """For each run of dropped characters: the view index where it was, and how many
        characters were dropped up to and including it."""
        if self._runs is None:
            at: list[int] = []
            before: list[int] = []
            total = 0
            for run in self.dropped.finditer(self.text):
                total_before = total
                total += run.end() - run.start()
                at.append(run.start() - total_before)
                before.append(total)
            self._runs = (at, before)
        return self._runs


def squeezed(text: str) -> View:
    t = tables()
    return View(text, text.translate(t.squeezed), t.squeezed_dropped)


def folded(text: str) -> View:
    t = tables()
    return View(text, text.translate(t.folded), t.folded_dropped)


def squeeze(text: str) -> str:
    """The squeezed view only (of a term)."""
    return text.translate(tables().squeezed)


def is_separator(ch: str) -> bool:
    """Would the squeezed view drop this character?"""
    return len(ch) == 1 and ord(ch) < 0x10000 and tables().squeezed.get(ord(ch), 0) is None


def is_word_char(ch: str) -> bool:
    """A letter or digit of a Latin-script word (what whole-word matching looks at), or a
    symbol written for one (@ for a)."""
    if not ch:
        return False
    f = ch.translate(tables().squeezed)
    return len(f) == 1 and f.isascii() and f.isalnum()


def is_invisible(ch: str) -> bool:
    """Dropped from both views: zero-width and other format characters."""
    return len(ch) == 1 and ord(ch) < 0x10000 and tables().folded.get(ord(ch), 0) is None
