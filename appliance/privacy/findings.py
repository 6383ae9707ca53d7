"""Everything the scanner finds in a text: the identifiers (``detectors``), US phones,
person names and postal addresses (``entities``) and dictionary terms, in one list.

Identifiers win their characters: where a name or an address runs into one (an address
followed by its phone number), the entity keeps its part before it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from appliance.privacy.detectors import BY_SPAN, ENTITY_TYPES, Finding, detect, without_overlaps
from appliance.privacy.entities import find_entities, find_us_phones


def find(
    text: str,
    custom: Iterable[Finding] | None = None,
    *,
    weak: bool = False,
    entities: bool = True,
) -> list[Finding]:
    """Without overlaps, in order. ``weak`` as for ``detect``; without ``entities``, no
    names and no addresses (identifiers only)."""
    found = detect(text, custom, weak=weak)
    if not entities:
        phones = find_us_phones(text)
        return without_overlaps(found + phones) if phones else found
    others = find_entities(text)  # the name and address tables load on first use
    kept = without_overlaps(found + [f for f in others if f.type not in ENTITY_TYPES])
    names = [f for f in others if f.type in ENTITY_TYPES]
    return _with_entities(kept, names) if names else kept


def _with_entities(kept: list[Finding], entities: list[Finding]) -> list[Finding]:
    """Names and addresses beside the identifiers: an identifier inside one wins its
    characters, and the entity keeps its part before the identifier (an address run on
    into a phone number: ``…3单元501室 021-62345678``). ``kept`` is sorted and without
    overlaps, and so are ``entities``: one pass over both."""
    out = list(kept)
    starts = [f.start for f in kept]
    for e in entities:
        i = bisect.bisect_left(starts, e.start)
        if i and kept[i - 1].end > e.start:
            continue  # it starts inside an identifier
        end = min(e.end, kept[i].start) if i < len(kept) else e.end
        if end - e.start >= 2:
            out.append(e if end == e.end else Finding(e.start, end, e.type, e.score))
    return sorted(out, key=BY_SPAN)
