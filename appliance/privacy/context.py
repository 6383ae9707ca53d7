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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from appliance.privacy.detectors import Finding


@dataclass(frozen=True)
class ContextRule:
    types: frozenset[str]
    keywords: tuple[str, ...]  # lower-cased
    window: int
    adjust: float
    direction: str = "both"  # before | after | both: where the keyword stands


class ContextRules:
    def __init__(self, rules: Sequence[ContextRule] = (), min_score: float = 0.5) -> None:
        self.rules = tuple(rules)
        self.min_score = min_score
        self.types: frozenset[str] = frozenset().union(*(r.types for r in self.rules))
        # How far a rule may look on either side of a value (a stream holds back this much).
        self.reach = max((r.window for r in self.rules), default=0)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, text: str, findings: Iterable[Finding]) -> list[Finding]:
        """The findings with rules applied, less those now under ``min_score``."""
        kept = []
        for finding in findings:
            if finding.type in self.types:
                finding = replace(finding, score=self._score(text, finding))
            if finding.score >= self.min_score:
                kept.append(finding)
        return kept

    def _score(self, text: str, finding: Finding) -> float:
        score = finding.score + sum(a.rule.adjust for a in self.adjustments(text, finding))
        return min(1.0, max(0.0, score))

    def adjustments(self, text: str, finding: Finding) -> list[Adjustment]:
        """The rules that raise or lower ``finding``, each with the keyword that bound."""
        found = []
        for rule in self.rules:
            if finding.type not in rule.types:
                continue
            if rule.direction != "after":
                before = text[max(0, finding.start - rule.window) : finding.start].lower()
                hit = _label_before(before, rule.keywords)
                if hit is not None:
                    found.append(Adjustment(rule, hit[0], "before", hit[1]))
                    continue
            if rule.direction != "before":
                after = text[finding.end : finding.end + rule.window].lower()
                hit = _label_after(after, rule.keywords)
                if hit is not None:
                    found.append(Adjustment(rule, hit[0], "after", hit[1]))
        return found


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


def _label_before(before: str, keywords: tuple[str, ...]) -> tuple[str, int] | None:
    """The keyword in the text before a value with no digit between them, and how far."""
    for keyword in keywords:
        at = before.rfind(keyword)
        if at != -1 and not _has_digit(before, at + len(keyword), len(before)):
            return keyword, len(before) - at - len(keyword)
    return None


def _label_after(after: str, keywords: tuple[str, ...]) -> tuple[str, int] | None:
    for keyword in keywords:
        at = after.find(keyword)
        if at != -1 and not _has_digit(after, 0, at):
            return keyword, at
    return None


def _has_digit(text: str, start: int, end: int) -> bool:
    return any(ch in _DIGITS for ch in text[start:end])


_DIGITS = frozenset("0123456789" + "".join(chr(c) for c in range(0xFF10, 0xFF1A)))
