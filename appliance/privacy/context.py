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
        score = finding.score
        for rule in self.rules:
            if finding.type not in rule.types:
                continue
            if rule.direction != "after":
                before = text[max(0, finding.start - rule.window) : finding.start].lower()
                if any(_labels_before(before, k) for k in rule.keywords):
                    score += rule.adjust
                    continue
            if rule.direction != "before":
                after = text[finding.end : finding.end + rule.window].lower()
                if any(_labels_after(after, k) for k in rule.keywords):
                    score += rule.adjust
        return min(1.0, max(0.0, score))


def _labels_before(before: str, keyword: str) -> bool:
    """``keyword`` in the text before a value with no digit between them (its last one)."""
    at = before.rfind(keyword)
    return at != -1 and not _has_digit(before, at + len(keyword), len(before))


def _labels_after(after: str, keyword: str) -> bool:
    at = after.find(keyword)
    return at != -1 and not _has_digit(after, 0, at)


def _has_digit(text: str, start: int, end: int) -> bool:
    return any(ch in _DIGITS for ch in text[start:end])


_DIGITS = frozenset("0123456789" + "".join(chr(c) for c in range(0xFF10, 0xFF1A)))
