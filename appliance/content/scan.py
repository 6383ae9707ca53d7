"""Content findings of one text, whole or streamed, and what the policy does with them.

``Scanner.scan`` is the whole text; ``StreamFilter`` the same text piece by piece, as an
answer streams: it holds back the tail of what came (as long as the longest term, in the
squeezed view, and any hit not yet complete), decides on what precedes it and releases
that, masked. Fed all of a text, in any split, it gives what ``scan`` gives: the same
findings, the same masks, and a ``block`` that cuts the text at the same place, before
the first character of the blocked term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.content import normalize
from appliance.content.matcher import Hit, canary_matcher, matcher_of
from appliance.content.policy import LEAK_CATEGORY, ContentPolicy
from appliance.errors import InvalidRequest

REGEX_WINDOW = 64  # characters a streamed regex match may span
CONTEXT = 64  # characters of released text kept to judge what follows


@dataclass(frozen=True)
class Finding:
    category: str
    action: str
    start: int
    end: int
    term: str = ""  # the term, pattern or regex that matched (never shown to callers)
    source: str = "term"

    def public(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "category": self.category,
            "action": self.action,
        }


@dataclass
class Result:
    text: str  # after masking (a blocked text: up to the block)
    findings: list[Finding]
    blocked: Finding | None = None


class ContentBlocked(InvalidRequest):
    """A category the policy blocks (400, ``code`` content_policy_violation). The message
    names the category, never the text that matched."""

    def __init__(self, category: str, direction: str = "input") -> None:
        where = "request" if direction == "input" else "answer"
        super().__init__(
            f"The {where} was refused by the content policy (category: {category}).",
            code="content_policy_violation",
        )
        self.category = category


class Scanner:
    """A policy's matcher with a caller's actions (``ContentPolicy.actions_for``)."""

    def __init__(
        self,
        policy: ContentPolicy,
        direction: str,
        actions: dict[str, Any] | None = None,
        *,
        canary: str | None = None,
    ) -> None:
        self.policy = policy
        self.direction = direction
        self.actions = actions if actions is not None else policy.actions_for()
        self.names = [*policy.names, LEAK_CATEGORY]
        self.canary = canary
        if canary is not None:
            self.matcher = canary_matcher(policy, canary)
        else:
            self.matcher = matcher_of(policy)
        self.window = self.matcher.longest + (REGEX_WINDOW if policy.regexes else 0)

    @property
    def holds(self) -> bool:
        """Does any finding change the text (mask, block)? Else a stream need hold nothing."""
        names = self.names if self.canary else self.policy.names
        return self.active and any(self.action(name) in ("mask", "block") for name in names)

    @property
    def active(self) -> bool:
        return not self.matcher.empty or bool(self.policy.regexes)

    def action(self, category: str) -> str:
        actions = self.actions.get(category)
        return actions.of(self.direction) if actions is not None else "flag"

    def findings(self, text: str, hits: list[Hit] | None = None) -> list[Finding]:
        out = []
        for hit in self.matcher.hits(text) if hits is None else hits:
            name = self.names[hit.category]
            action = self.action(name)
            if action != "allow":
                out.append(Finding(name, action, hit.start, hit.end, hit.term, hit.source))
        return out

    def scan(self, text: str) -> Result:
        """The whole text: every finding, the text masked (up to the first block, which
        cuts it there, as a stream is cut)."""
        stream = StreamFilter(self)
        out = stream.feed(text, last=True)
        findings = stream.found
        if stream.blocked is not None:  # every finding of the text, the cut one's after too
            findings = stream.scanned
        return Result(out, findings, stream.blocked)

    def mask(self, text: str, findings: list[Finding]) -> str:
        spans = sorted(
            (f.start, f.end, self.policy.mask_of(f.category))
            for f in findings
            if f.action == "mask"
        )
        out, at = [], 0
        for start, end, mask in spans:
            if end <= at:
                continue
            start = max(start, at)
            out.append(text[at:start])
            out.append(mask * (end - start) if len(mask) == 1 else mask)
            at = end
        out.append(text[at:])
        return "".join(out)


@dataclass
class StreamFilter:
    """One text through a scanner piece by piece (see the module)."""

    scanner: Scanner
    found: list[Finding] = field(default_factory=list)
    blocked: Finding | None = None
    _context: str = ""  # released, kept to judge what follows (unmasked)
    _pending: str = ""
    _offset: int = 0  # characters of the text released so far
    scanned: list[Finding] = field(default_factory=list)  # of the last buffer scanned

    def feed(self, piece: str, *, last: bool = False) -> str:
        """What the caller gets now of what came so far ("" once blocked)."""
        if self.blocked is not None:
            return ""
        buffer = self._context + self._pending + piece
        base = len(self._context)
        findings = self.scanner.findings(buffer) if self.scanner.active else []
        self.scanned = findings
        cut = len(buffer)
        if not last:
            view = normalize.squeezed(buffer)
            keep = self.scanner.window - 1
            if keep > 0:
                cut = view.origin(len(view.view) - keep) if len(view.view) > keep else base
            for f in findings:  # a hit at the very end may grow (a word goes on)
                if f.end >= len(buffer):
                    cut = min(cut, f.start)
            changed = True
            while changed:  # nothing released of a hit that goes past the cut
                changed = False
                for f in findings:
                    if f.start >= base and f.start < cut < f.end:
                        cut, changed = f.start, True
            cut = max(cut, base)
        decided = [f for f in findings if base <= f.start < cut]
        for f in decided:
            if f.action == "block":
                cut = f.start
                self.blocked = f
                break
        decided = [f for f in decided if f.start < cut or f is self.blocked]
        released = buffer[base:cut]
        shifted = [
            Finding(f.category, f.action, f.start - base, min(f.end, cut) - base, f.term, f.source)
            for f in decided
        ]
        self.found.extend(
            Finding(f.category, f.action, f.start - base + self._offset,
                    f.end - base + self._offset, f.term, f.source)
            for f in decided
        )  # fmt: skip
        self._offset += len(released)
        self._context = (self._context + released)[-CONTEXT:]
        self._pending = buffer[cut:] if self.blocked is None else ""
        return self.scanner.mask(released, [f for f in shifted if f.action == "mask"])
