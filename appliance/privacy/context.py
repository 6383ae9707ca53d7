"""Context rules: a keyword near a finding raises or lowers its confidence.

A finding's ``score`` starts at the detector's (1.0 for a validated value). Each rule that
covers its type and has one of its keywords within ``window`` characters before or after
the value adds ``adjust`` (negative to lower), clamped to [0, 1]. A finding whose score ends
below the policy's ``min_score`` is not acted on. Keywords match in any case.

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
        score = finding.score
        for rule in self.rules:
            if finding.type not in rule.types:
                continue
            before = text[max(0, finding.start - rule.window) : finding.start].lower()
            after = text[finding.end : finding.end + rule.window].lower()
            if any(k in before or k in after for k in rule.keywords):
                score += rule.adjust
        return min(1.0, max(0.0, score))
