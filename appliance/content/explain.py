"""Why a hit matched: the forms of evasion that separate the text from its term."""

from __future__ import annotations

import unicodedata

from appliance.content import normalize


def evasions(found: str, term: str, source: str) -> list[str]:
    """The folding steps the text needed to read as the term (for people: CLI, portal)."""
    how: list[str] = []
    if source == "pinyin":
        how.append("pinyin")
    if source == "pattern":
        how.append("pattern")
    if source == "regex":
        return ["regex"]
    simplified = normalize.tables()
    chars = [c for c in found if not normalize.is_separator(c)]
    if len(chars) < len(found.replace(" ", "")) or any(
        normalize.is_separator(c) and c not in term for c in found
    ):
        how.append("separators")
    if any(unicodedata.category(c) in ("Cf",) for c in found):
        how.append("zero-width")
    for c in chars:
        nfkc = unicodedata.normalize("NFKC", c)
        if nfkc != c and "width" not in how:
            how.append("width")
        if (
            "\u3400" <= c <= "\u9fff"
            and c.translate(simplified.folded) != c
            and ("traditional" not in how)
        ):
            how.append("traditional")
        if (
            c.isalpha()
            and not c.isascii()
            and c.translate(simplified.folded).isascii()
            and (unicodedata.normalize("NFKC", c) == c)
        ):
            name = unicodedata.name(c, "")
            tag = "homoglyph" if ("CYRILLIC" in name or "GREEK" in name) else "accents"
            if tag not in how:
                how.append(tag)
        substituted = c in normalize.SUBSTITUTIONS and c != "l" and c.lower() not in term.lower()
        if substituted and "substitution" not in how:
            how.append("substitution")
    upper = any(c.isupper() for c in found) and not any(c.isupper() for c in term)
    if upper and "case" not in how:
        how.append("case")
    return how
