"""The privacy stages of the data path, one on the request side and two on the answer side.

Request (``desensitize_request``): before the upstream sees a request, personal data in
every text it carries (chat messages, prompts, inputs, the Responses API's input and
instructions, score and rerank texts) is handled per the caller's policy actions; a
``block`` refuses the request (400).
Answer (``OutputScan``, ``Restore``): personal data the model wrote itself is masked or
flagged (policy ``output``), in streams too, then placeholders are restored for the caller
when the policy says so. ``pipeline`` puts them in order with the other stages.
The audit event gets the types, actions and counts, never the values. The pseudonyms live
in this request's memory only, or, for a request that names its conversation, sealed in
the database for the policy's conversation_ttl.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from appliance.api.context import ApiCall
from appliance.api.stages import Piece
from appliance.auth.principal import Principal
from appliance.privacy.conversations import ConversationStore, owner_of
from appliance.privacy.detectors import Finding
from appliance.privacy.output import StreamScanner, scan, stream_scanner
from appliance.privacy.policy import PrivacyPolicy
from appliance.privacy.transform import Blocked, Pseudonyms, StreamRestorer, desensitize

# Where a request's text is: chat messages (content and text parts, the speaker's name, the
# arguments of the tool calls in the history, tool results), completion and tokenize
# prompts, embeddings, pooling and classification input, the Responses API's input items
# and instructions, the texts of /score and /rerank (and their multimodal form's text
# parts), and the end-user identifier ``user``. Token ids and embeddings carry no text.
TEXT_FIELDS = (
    "messages",
    "prompt",
    "input",
    "instructions",
    "text_1",
    "text_2",
    "query",
    "documents",
    "user",
)
# In a Responses API input item (a message, a tool call, a tool's output, reasoning) or
# a content part: the keys that hold text, or hold parts that do. Ids, names and types
# are not text of the caller's.
ITEM_TEXT_KEYS = ("content", "text", "arguments", "output", "summary", "input")
T = TypeVar("T")


@dataclass
class OutputScan:
    """Answer stage: personal data the model wrote itself, masked or flagged (``output``)."""

    policy: PrivacyPolicy
    call: ApiCall
    _scanners: dict[tuple[int, str], StreamScanner] = field(default_factory=dict)

    def __call__(self, piece: Piece) -> None:
        scanner = self._scanners.get(piece.key)
        if scanner is None and piece.last:  # the whole text
            piece.model, found = scan(piece.model, self.policy.find_identifiers, self.policy.output)
            self._count(found)
            return
        if scanner is None:
            scanner = self._scanners[piece.key] = stream_scanner(self.policy, self.policy.output)
        seen = len(scanner.found)
        piece.model = scanner.feed(piece.model) + (scanner.flush() if piece.last else "")
        self._count(scanner.found[seen:])

    def _count(self, found: list[Finding]) -> None:
        if not found:
            return
        counts = self.call.details.setdefault("privacy", {}).setdefault("output", {})
        for f in found:
            counts[f.type] = counts.get(f.type, 0) + 1


@dataclass
class Restore:
    """Answer stage: the request's placeholders back to their values, for the caller."""

    pseudonyms: Pseudonyms
    _restorers: dict[tuple[int, str], StreamRestorer] = field(default_factory=dict)

    def __call__(self, piece: Piece) -> None:
        restorer = self._restorers.get(piece.key)
        if restorer is None and piece.last:  # the whole text
            piece.caller = self.pseudonyms.restore(piece.model)
        elif len(self.pseudonyms):
            if restorer is None:
                restorer = self._restorers[piece.key] = StreamRestorer(self.pseudonyms)
            piece.caller = restorer.feed(piece.model) + (restorer.flush() if piece.last else "")


def desensitize_request(
    policy: PrivacyPolicy,
    principal: Principal,
    call: ApiCall,
    payload: dict[str, Any],
    hash_key: bytes,
    *,
    conversation: tuple[ConversationStore, str] | None = None,
) -> Pseudonyms:
    """Request stage: the payload's messages, prompt or input desensitized in place.

    Raises ``Blocked`` (400) for a type the caller's policy actions block.

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

        clean_payload(payload, clean)
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
    return pseudonyms


def _on_fresh_copy(
    payload: dict[str, Any], work: Callable[[Pseudonyms], T]
) -> Callable[[Pseudonyms], T]:
    """``work`` that starts from the payload's original texts each time it runs."""
    original = {k: copy.deepcopy(payload[k]) for k in TEXT_FIELDS if k in payload}

    def again(pseudonyms: Pseudonyms) -> T:
        payload.update(copy.deepcopy(original))
        return work(pseudonyms)

    return again


def clean_payload(payload: dict[str, Any], clean: Callable[[str], str]) -> None:
    if isinstance(payload.get("user"), str):
        payload["user"] = clean(payload["user"])
    if isinstance(payload.get("messages"), list):
        for message in payload["messages"]:
            _clean_message(message, clean)
    for name in ("prompt", "input", "instructions", "text_1", "text_2", "query", "documents"):
        if name in payload:
            payload[name] = _clean_tree(payload[name], clean)


def _clean_tree(value: Any, clean: Callable[[str], str]) -> Any:
    """A text, a list of them, or items and parts holding them (``ITEM_TEXT_KEYS``), with
    every text cleaned; anything else (token ids, images, ids) as it was."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_clean_tree(item, clean) for item in value]
    if isinstance(value, dict):
        for key in ITEM_TEXT_KEYS:
            if key in value:
                value[key] = _clean_tree(value[key], clean)
    return value


def _clean_message(message: Any, clean: Callable[[str], str]) -> None:
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = clean(content)
    elif isinstance(content, list):
        for position, part in enumerate(content):
            if isinstance(part, str):  # vLLM takes a bare string as a text part
                content[position] = clean(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = clean(part["text"])
    for name in ("name", "reasoning_content"):
        if isinstance(message.get(name), str):
            message[name] = clean(message[name])
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        _clean_arguments(call.get("function") if isinstance(call, dict) else None, clean)
    _clean_arguments(message.get("function_call"), clean)  # the legacy single call


def _clean_arguments(function: Any, clean: Callable[[str], str]) -> None:
    """A tool call's arguments: a JSON text, desensitized as text (a placeholder is a
    string's content, so the JSON stays valid)."""
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        function["arguments"] = clean(function["arguments"])
