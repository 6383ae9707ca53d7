"""Context rules: a keyword near a finding raises or lowers its confidence.

A finding's ``score`` starts at the detector's (1.0 for a validated value). Each rule that
covers its type and has one of its keywords within ``window`` characters before or after
the value adds ``adjust`` (negative to lower), clamped to [0, 1]. A finding whose score ends
below the policy's ``min_score`` is not acted on. Keywords match in any case.

A keyword labels the value it is written next to, not any value in reach: it counts only
where no digit stands between it and the finding (``订单号`` after ``身份证号 <ID>，`` labels
the number that follows it, not the ID before it), and only on its rule's side
(``direction``: before, after or both). A label that raises (``身份证号``, ``Tel``) and a
neighbour's keyword that lowers both count, so a labelled value outweighs the neighbour.

Typical use: ``订单号`` / ``order no`` next to an 18-digit number lowers an ID or a card
(an order number that happens to pass the check digit); ``护照`` / ``passport`` raises a
passport number whose pattern alone is weak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from appliance.privacy.detectors import DIGIT_CLASS as _D
from appliance.privacy.detectors import Finding


@dataclass(frozen=True)
class ContextRule:
    types: frozenset[str]
    keywords: tuple[str, ...]  # lower-cased
    window: int
    adjust: float
    direction: str = "both"  # before | after | both: where the keyword stands

    def __post_init__(self) -> None:
        words = "|".join(re.escape(k) for k in sorted(self.keywords, key=len, reverse=True))
        # The last keyword before a value with no digit after it; the first one after a
        # value with no digit before it.
        object.__setattr__(self, "_before", re.compile(rf"(?s:.*)({words})[^{_D}]*\Z"))
        object.__setattr__(self, "_after", re.compile(rf"[^{_D}]*?({words})"))


class ContextRules:
    def __init__(self, rules: Sequence[ContextRule] = (), min_score: float = 0.5) -> None:
        self.rules = tuple(rules)
        self.min_score = min_score
        self.types: frozenset[str] = frozenset().union(*(r.types for r in self.rules))
        # How far a rule may look on either side of a value (a stream holds back this much).
        self.reach = max((r.window for r in self.rules), default=0)
        self._by_type: dict[str, tuple[ContextRule, ...]] = {
            kind: tuple(r for r in self.rules if kind in r.types) for kind in self.types
        }
        # What ``apply`` reads of each rule, per type, in the rules' order: its window, its
        # adjustment and its two patterns (None for a side it does not look at).
        self._checks: dict[str, tuple[_Check, ...]] = {
            kind: tuple(
                (
                    r.window,
                    r.adjust,
                    r._before if r.direction != "after" else None,  # type: ignore[attr-defined]
                    r._after if r.direction != "before" else None,  # type: ignore[attr-defined]
                )
                for r in rules
            )
            for kind, rules in self._by_type.items()
        }

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, text: str, findings: Iterable[Finding]) -> list[Finding]:
        """The findings with rules applied, less those now under ``min_score``."""
        kept = []
        checks, min_score = self._checks, self.min_score
        for finding in findings:
            rules = checks.get(finding.type)
            if rules is not None:
                score = _score(text, finding, rules)
                if score != finding.score:
                    finding = Finding(finding.start, finding.end, finding.type, score)
            if finding.score >= min_score:
                kept.append(finding)
        return kept

    def adjustments(self, text: str, finding: Finding) -> list[Adjustment]:
        """The rules that raise or lower ``finding``, each with the keyword that bound."""
        found = []
        for rule in self._by_type.get(finding.type, ()):
            if rule.direction != "after":
                before = text[max(0, finding.start - rule.window) : finding.start].lower()
                hit = rule._before.match(before)  # type: ignore[attr-defined]
                if hit is not None:
                    found.append(Adjustment(rule, hit[1], "before", len(before) - hit.end(1)))
                    continue
            if rule.direction != "before":
                after = text[finding.end : finding.end + rule.window].lower()
                hit = rule._after.match(after)  # type: ignore[attr-defined]
                if hit is not None:
                    found.append(Adjustment(rule, hit[1], "after", hit.start(1)))
        return found


# A rule as ``apply`` reads it: window, adjustment, the pattern before and the one after.
_Check = tuple[int, float, "re.Pattern[str] | None", "re.Pattern[str] | None"]


def _score(text: str, finding: Finding, rules: tuple[_Check, ...]) -> float:
    """``finding``'s score with the rules that bind applied (what ``adjustments`` finds,
    without making an Adjustment of each), clamped to [0, 1]."""
    start, end = finding.start, finding.end
    adjusts = []
    for window, adjust, before, after in rules:
        # Before the value first; after it only where the keyword before did not bind.
        if (before is not None and before.match(text[max(0, start - window) : start].lower())) or (
            after is not None and after.match(text[end : end + window].lower())
        ):
            adjusts.append(adjust)
    return min(1.0, max(0.0, finding.score + sum(adjusts)))


@dataclass(frozen=True)
class Adjustment:
    """A context rule that applied: ``keyword`` stood ``distance`` characters away."""

    rule: ContextRule
    keyword: str
    side: str  # before | after
    distance: int

    def describe(self) -> str:
        sign = "raised" if self.rule.adjust > 0 else "lowered"
        return (
            f"{sign} {self.rule.adjust:+.2f} by keyword {self.keyword} "
            f"{self.distance} chars {self.side}"
        )
