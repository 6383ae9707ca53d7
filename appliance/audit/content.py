"""What an API call's audit event keeps of its content: a policy choice.

``audit_content`` in the desensitization policy:

- ``none`` (the default): no text at all, only counts and metadata;
- ``desensitized``: the texts as the model saw and wrote them (personal data already
  replaced: placeholders, masks), readable by whoever reads the audit trail;
- ``encrypted``: the full texts, as the caller sent and received them, sealed with
  AES-256-GCM under a key derived from the master key and bound to the request id; only
  ``appliance audit content EVENT_ID`` on the appliance opens them (and that is audited).

Each side is capped at ``MAX_CHARS`` characters so an event stays small.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import InvalidRequest

MODES = ("none", "desensitized", "encrypted")
MAX_CHARS = 32_768
KEY_PURPOSE = "audit-content"


@dataclass
class ContentCapture:
    mode: str  # desensitized | encrypted
    key: bytes | None = None  # for encrypted
    prompt: list[str] = field(default_factory=list)
    answers: dict[int, list[str]] = field(default_factory=dict)

    def request_text(self, original: str, desensitized: str) -> None:
        self.prompt.append(original if self.mode == "encrypted" else desensitized)

    def answer_text(self, index: int, from_model: str, to_caller: str) -> None:
        piece = to_caller if self.mode == "encrypted" else from_model
        if piece:
            self.answers.setdefault(index, []).append(piece)

    def fields(self, request_id: str | None) -> dict[str, Any]:
        """What goes into the event's details."""
        content = {
            "prompt": [_capped(text) for text in self.prompt],
            "answers": [_capped("".join(parts)) for _, parts in sorted(self.answers.items())],
        }
        if self.mode != "encrypted":
            return {"content": content}
        assert self.key is not None
        nonce = os.urandom(12)
        plain = json.dumps(content, ensure_ascii=False).encode()
        sealed = AESGCM(self.key).encrypt(nonce, plain, _bound(request_id))
        return {"content_sealed": base64.b64encode(nonce + sealed).decode()}


def open_sealed(key: bytes, sealed: str, request_id: str | None) -> dict[str, Any]:
    """The content of an ``encrypted`` event; InvalidRequest if it was altered."""
    try:
        raw = base64.b64decode(sealed)
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], _bound(request_id))
    except (InvalidTag, ValueError):
        raise InvalidRequest("the event's sealed content fails its integrity check") from None
    content: dict[str, Any] = json.loads(plain)
    return content


def _capped(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "…[truncated]"


def _bound(request_id: str | None) -> bytes:
    return f"appliance-audit-content-v1|{request_id or ''}".encode()
