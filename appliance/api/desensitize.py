"""The desensitize step of the data path: requests out, answers back.

Before the upstream sees a chat, completion or embeddings request, personal data in its
messages (prompt, input) is handled per the caller's policy actions; a ``block`` refuses
the request (400). In the answer, personal data the model wrote itself is masked or
flagged (policy ``output``), in streams too, then placeholders are restored for the caller
when the policy says so. The audit event gets the types, actions and counts, never the
values. The pseudonyms live in this request's memory only, or, for a request that names
its conversation, sealed in the database for the policy's conversation_ttl.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from appliance.api.context import ApiCall
from appliance.auth.principal import Principal
from appliance.privacy.conversations import ConversationStore, owner_of
from appliance.privacy.detectors import Finding
from appliance.privacy.output import StreamScanner, scan, stream_scanner
from appliance.privacy.policy import PrivacyPolicy
from appliance.privacy.transform import Blocked, Pseudonyms, StreamRestorer, desensitize

TEXT_FIELDS = ("messages", "prompt", "input")  # where a request's text is
T = TypeVar("T")


@dataclass
class Protection:
    """One request's pseudonyms and what the policy says to do with the answer."""

    pseudonyms: Pseudonyms
    policy: PrivacyPolicy
    call: ApiCall
    _restorers: dict[int, StreamRestorer] = field(default_factory=dict)
    _scanners: dict[int, StreamScanner] = field(default_factory=dict)
    _answers: int = 0  # whole answers seen, in choice order

    def answer(self, text: str) -> str:
        """A whole answer: the model's own personal data handled, placeholders restored."""
        if self.policy.output != "allow":
            text, found = scan(text, self.policy.find, self.policy.output)
            self._count(found)
        answer = self.pseudonyms.restore(text) if self.policy.restore else text
        if self.call.capture is not None:
            self.call.capture.answer_text(len(self.call.capture.answers), text, answer)
        if self.call.training is not None:
            self.call.training.answer_text(self._answers, text)
        self._answers += 1
        return answer

    def delta(self, index: int, text: str, *, last: bool) -> str:
        """One streamed piece of choice ``index``; ``last`` releases what was held back."""
        if self.policy.output != "allow":
            scanner = self._scanners.get(index)
            if scanner is None:
                scanner = self._scanners[index] = stream_scanner(self.policy, self.policy.output)
            seen = len(scanner.found)
            text = scanner.feed(text) + (scanner.flush() if last else "")
            self._count(scanner.found[seen:])
        out = text
        if self.policy.restore and len(self.pseudonyms):
            restorer = self._restorers.setdefault(index, StreamRestorer(self.pseudonyms))
            out = restorer.feed(text) + (restorer.flush() if last else "")
        if self.call.capture is not None:
            self.call.capture.answer_text(index, text, out)
        if self.call.training is not None:
            self.call.training.answer_text(index, text)
        return out

    def _count(self, found: list[Finding]) -> None:
        if not found:
            return
        counts = self.call.details.setdefault("privacy", {}).setdefault("output", {})
        for f in found:
            counts[f.type] = counts.get(f.type, 0) + 1


def protect_request(
    policy: PrivacyPolicy,
    principal: Principal,
    call: ApiCall,
    payload: dict[str, Any],
    hash_key: bytes,
    conversation: tuple[ConversationStore, str] | None = None,
) -> Protection:
    """Desensitize the payload's messages, prompt or input in place (raises Blocked, 400).

    With a ``conversation`` (its store and id) the pseudonyms are the conversation's,
    loaded and saved sealed; otherwise they live in this request's memory only.
    """
    actions = policy.actions_for(principal.roles, principal.key_prefix)

    def desensitize_payload(pseudonyms: Pseudonyms) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}

        if call.capture is not None:
            call.capture.prompt.clear()  # a conversation's retry starts over

        def clean(text: str) -> str:
            result = desensitize(text, actions, pseudonyms, hash_key=hash_key, find=policy.find)
            if call.capture is not None:
                call.capture.request_text(text, result.text)
            for kind, per_action in result.counts().items():
                for action, count in per_action.items():
                    slot = found.setdefault(kind, {})
                    slot[action] = slot.get(action, 0) + count
            return result.text

        _clean_payload(payload, clean)
        return found

    try:
        if conversation is None:
            pseudonyms = Pseudonyms()
            found = desensitize_payload(pseudonyms)
        else:
            store, conversation_id = conversation
            call.details.setdefault("privacy", {})["conversation"] = conversation_id
            owner = owner_of(principal.key_id, principal.user_id, principal.name)
            found, pseudonyms = store.run(
                owner, conversation_id, _on_fresh_copy(payload, desensitize_payload)
            )
    except Blocked as exc:
        call.details.setdefault("privacy", {})["blocked"] = exc.kind
        raise
    if found:
        call.details.setdefault("privacy", {})["input"] = found
    return Protection(pseudonyms, policy, call)


def _on_fresh_copy(
    payload: dict[str, Any], work: Callable[[Pseudonyms], T]
) -> Callable[[Pseudonyms], T]:
    """``work`` that starts from the payload's original texts each time it runs."""
    original = {k: copy.deepcopy(payload[k]) for k in TEXT_FIELDS if k in payload}

    def again(pseudonyms: Pseudonyms) -> T:
        payload.update(copy.deepcopy(original))
        return work(pseudonyms)

    return again


def _clean_payload(payload: dict[str, Any], clean: Callable[[str], str]) -> None:
    if isinstance(payload.get("messages"), list):
        for message in payload["messages"]:
            _clean_message(message, clean)
        return
    for name in TEXT_FIELDS[1:]:  # completions; embeddings (token ids carry no text)
        value = payload.get(name)
        if isinstance(value, str):
            payload[name] = clean(value)
        elif isinstance(value, list) and all(isinstance(p, str) for p in value):
            payload[name] = [clean(p) for p in value]


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
