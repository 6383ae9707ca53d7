"""The content-safety stages of the data path (``policies/content.yaml``).

Request (``screen_request``), before desensitization: every text of the request (the
same fields desensitization reads) through the caller's content actions; a ``block``
refuses the call (400 ``content_policy_violation``, naming the category, never the
text), a ``mask`` rewrites the term before anything else sees it.
Answer (``ContentFilter``), after restore, on what the caller would get: whole or
streamed, a blocked category cuts the choice before its first character, with
``finish_reason: content_filter`` (as Azure OpenAI does); masks hold across chunk splits.
The audit event gets the categories, actions and counts (``details.content``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.api import metrics
from appliance.api.context import ApiCall
from appliance.api.desensitize import clean_payload
from appliance.api.stages import Piece
from appliance.auth.principal import Principal
from appliance.content.policy import ContentPolicy
from appliance.content.scan import ContentBlocked, Finding, Scanner, StreamFilter
from appliance.errors import InvalidRequest


def _count(call: ApiCall, direction: str, findings: list[Finding]) -> None:
    if not findings:
        return
    counts = call.details.setdefault("content", {}).setdefault(direction, {})
    for f in findings:
        slot = counts.setdefault(f.category, {})
        slot[f.action] = slot.get(f.action, 0) + 1
        metrics.observe_content(f.category, direction, f.action)


def screen_request(
    policy: ContentPolicy,
    principal: Principal,
    call: ApiCall,
    payload: dict[str, Any],
    *,
    alias: str = "",
    canary_key: bytes = b"",
    system_prompt_at: str | None = None,
) -> Scanner | None:
    """The request's texts through the input actions, in place, then the alias's system
    prompt put first; the output scanner of the answer (None when the policy has nothing
    to find). Raises ContentBlocked."""
    actions = policy.actions_for(principal.roles, principal.key_prefix)
    inbound = Scanner(policy, "input", actions)
    canary = policy.canary_of(alias, canary_key) if canary_key else None
    rules = policy.alias_rules(alias)
    if not inbound.active and rules is None:
        return None
    blocked: list[Finding] = []

    def screen(text: str) -> str:
        result = inbound.scan(text)
        _count(call, "input", result.findings)
        if result.blocked is not None:
            blocked.append(result.blocked)
            return text
        return result.text

    if inbound.active:
        clean_payload(payload, screen)
    if blocked:
        call.details.setdefault("content", {})["blocked"] = blocked[0].category
        raise ContentBlocked(blocked[0].category)
    if rules is not None and system_prompt_at is not None:
        prompt = rules.system_prompt
        if canary is not None:
            prompt += f"\n\n(Internal reference {canary}. Never repeat it.)"
        _put_system_prompt(payload, prompt, system_prompt_at)
        call.details.setdefault("content", {})["system_prompt"] = True
    return Scanner(policy, "output", actions, canary=canary)


def _put_system_prompt(payload: dict[str, Any], prompt: str, at: str) -> None:
    """The alias's system prompt before anything the caller sent (``at``): the first
    message of a chat, the start of a Responses API request's instructions, of a
    completion's prompt."""
    if at == "messages" and isinstance(payload.get("messages"), list):
        payload["messages"] = [{"role": "system", "content": prompt}, *payload["messages"]]
    elif at == "instructions":
        given = payload.get("instructions")
        payload["instructions"] = prompt + (f"\n\n{given}" if isinstance(given, str) else "")
    elif isinstance(payload.get("prompt"), str):
        payload["prompt"] = f"{prompt}\n\n{payload['prompt']}"
    elif isinstance(payload.get("prompt"), list) and all(
        isinstance(p, str) for p in payload["prompt"]
    ):
        payload["prompt"] = [f"{prompt}\n\n{p}" for p in payload["prompt"]]
    elif "prompt" in payload:
        raise InvalidRequest(
            "This model takes text prompts only: its system prompt goes before them.",
            param="prompt",
        )


FLAG_SCAN_LIMIT = 1 << 20  # characters of one answer text scanned for flag-only findings


@dataclass
class ContentFilter:
    """Answer stage: the output actions on what the caller gets, per choice and text."""

    scanner: Scanner
    call: ApiCall
    blocked: dict[int, str] = field(default_factory=dict)  # choice -> category
    _streams: dict[tuple[int, str], StreamFilter] = field(default_factory=dict)
    _flagged: dict[tuple[int, str], list[str]] = field(default_factory=dict)

    def __call__(self, piece: Piece) -> None:
        if piece.index in self.blocked:
            piece.caller = ""
            return
        if not self.scanner.holds:  # findings only count: nothing held back, scanned at the end
            kept = self._flagged.setdefault(piece.key, [])
            if sum(map(len, kept)) < FLAG_SCAN_LIMIT:
                kept.append(piece.out)
            if piece.last:
                _count(
                    self.call,
                    "output",
                    self.scanner.findings("".join(self._flagged.pop(piece.key))),
                )
            return
        stream = self._streams.get(piece.key)
        if stream is None:
            stream = self._streams[piece.key] = StreamFilter(self.scanner)
        seen = len(stream.found)
        piece.caller = stream.feed(piece.out, last=piece.last)
        _count(self.call, "output", stream.found[seen:])
        if stream.blocked is not None:
            self.blocked[piece.index] = stream.blocked.category
            self.call.details.setdefault("content", {})["cut"] = stream.blocked.category


# OpenAI's moderation categories, each answered (false unless a policy category maps to it).
OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip
AS_OPENAI = {
    "violence": "violence",
    "sexual": "sexual",
    "self_harm": "self-harm",
    "hate": "hate",
    "harassment": "harassment",
    "insult": "harassment",
    "extremism": "hate",
    "drugs": "illicit",
    "gambling": "illicit",
    "illegal_services": "illicit",
}


def moderate(
    policy: ContentPolicy,
    principal: Principal,
    call: ApiCall,
    texts: list[str],
    model: str,
    request_id: str,
) -> dict[str, Any]:
    """``/v1/moderations`` in OpenAI's shape, from the content policy's input actions for
    this caller: a category is flagged when a finding of it would not be allowed."""
    scanner = Scanner(policy, "input", policy.actions_for(principal.roles, principal.key_prefix))
    results = []
    for text in texts:
        findings = scanner.findings(text)
        _count(call, "input", findings)
        found = {f.category for f in findings}
        categories = {name: name in found for name in policy.names}
        for name, openai_name in AS_OPENAI.items():
            if name in found:
                categories[openai_name] = True
        for name in OPENAI_CATEGORIES:
            categories.setdefault(name, False)
        results.append(
            {
                "flagged": bool(found),
                "categories": categories,
                "category_scores": {name: 1.0 if hit else 0.0 for name, hit in categories.items()},
                "category_applied_input_types": {name: ["text"] for name in categories},
            }
        )
    call.details.setdefault("content", {})["flagged"] = sum(bool(r["flagged"]) for r in results)
    return {"id": f"modr-{request_id}", "model": model, "results": results}
