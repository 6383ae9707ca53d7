"""The desensitize step of the data path: requests out, answers back.

Before the upstream sees a chat or completion request, personal data in its messages (or
prompt) is handled per the caller's policy actions; a ``block`` refuses the request (400).
In the answer, personal data the model wrote itself is masked or flagged (policy
``output``), then placeholders are restored for the caller when the policy says so, in
streams too. The audit event gets the types, actions and counts, never the values; the
pseudonyms live in this request's memory only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.api.context import ApiCall
from appliance.auth.principal import Principal
from appliance.privacy.detectors import detect
from appliance.privacy.dictionary import Dictionary
from appliance.privacy.policy import PrivacyPolicy
from appliance.privacy.transform import (
    Blocked,
    Pseudonyms,
    StreamRestorer,
    desensitize,
    mask,
)


@dataclass
class Protection:
    """One request's pseudonyms and what the policy says to do with the answer."""

    pseudonyms: Pseudonyms
    restore: bool
    output: str  # mask | flag | allow
    call: ApiCall
    dictionary: Dictionary | None = None
    _streams: dict[int, StreamRestorer] = field(default_factory=dict)

    def answer(self, text: str) -> str:
        """A whole answer: the model's own personal data handled, placeholders restored."""
        text = self._scan_output(text)
        return self.pseudonyms.restore(text) if self.restore else text

    def delta(self, index: int, text: str, *, last: bool) -> str:
        """One streamed piece of choice ``index``; ``last`` releases what was held back."""
        if not self.restore or not len(self.pseudonyms):
            return text
        restorer = self._streams.setdefault(index, StreamRestorer(self.pseudonyms))
        out = restorer.feed(text)
        return out + restorer.flush() if last else out

    def _scan_output(self, text: str) -> str:
        if self.output == "allow":
            return text
        found = detect(text, self.dictionary.find(text) if self.dictionary else None)
        if not found:
            return text
        counts = self.call.details.setdefault("privacy", {}).setdefault("output", {})
        for f in found:
            counts[f.type] = counts.get(f.type, 0) + 1
        if self.output == "flag":
            return text
        pieces, last = [], 0
        for f in found:
            pieces += [text[last : f.start], mask(text[f.start : f.end], f.type)]
            last = f.end
        return "".join(pieces) + text[last:]


def protect_request(
    policy: PrivacyPolicy,
    principal: Principal,
    call: ApiCall,
    payload: dict[str, Any],
    hash_key: bytes,
) -> Protection:
    """Desensitize the payload's messages or prompt in place (raises Blocked, 400)."""
    actions = policy.actions_for(principal.roles, principal.key_prefix)
    pseudonyms = Pseudonyms()
    found: dict[str, dict[str, int]] = {}

    def clean(text: str) -> str:
        result = desensitize(
            text, actions, pseudonyms, hash_key=hash_key, dictionary=policy.dictionary
        )
        for kind, per_action in result.counts().items():
            for action, count in per_action.items():
                slot = found.setdefault(kind, {})
                slot[action] = slot.get(action, 0) + count
        return result.text

    try:
        _clean_payload(payload, clean)
    except Blocked as exc:
        call.details["privacy"] = {"blocked": exc.kind}
        raise
    if found:
        call.details.setdefault("privacy", {})["input"] = found
    return Protection(pseudonyms, policy.restore, policy.output, call, policy.dictionary)


def _clean_payload(payload: dict[str, Any], clean: Callable[[str], str]) -> None:
    if isinstance(payload.get("messages"), list):
        for message in payload["messages"]:
            _clean_message(message, clean)
    elif "prompt" in payload:
        prompt = payload["prompt"]
        if isinstance(prompt, str):
            payload["prompt"] = clean(prompt)
        elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            payload["prompt"] = [clean(p) for p in prompt]


def _clean_message(message: Any, clean: Callable[[str], str]) -> None:
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = clean(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = clean(part["text"])


def restore_result(protection: Protection, result: dict[str, Any]) -> None:
    """A non-streamed answer, in place: every choice's text."""
    for choice in result.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = protection.answer(message["content"])
        if isinstance(choice.get("text"), str):
            choice["text"] = protection.answer(choice["text"])


def restore_chunk(protection: Protection, chunk: dict[str, Any]) -> None:
    """A streamed chunk, in place: placeholders restored across chunk boundaries."""
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
        last = bool(choice.get("finish_reason"))
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            delta["content"] = protection.delta(index, delta["content"], last=last)
        elif isinstance(choice.get("text"), str):
            choice["text"] = protection.delta(index, choice["text"], last=last)
        elif last and isinstance(delta, dict) and (held := protection.delta(index, "", last=True)):
            delta["content"] = held
