"""Applying a policy's actions to what the detectors found, and undoing pseudonyms.

``pseudonymize`` replaces a value by ``[TYPE_n]``; the same value gets the same placeholder
for as long as one ``Pseudonyms`` lives (a request, or a conversation), and only that object
can restore it. ``hash`` is a keyed HMAC: stable for one deployment's key, useless without it.
``block`` refuses the whole text, naming the type and never the value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.errors import InvalidRequest, SetupError
from appliance.privacy.detectors import Finding, detect, fold

PLACEHOLDER = re.compile(r"\[([A-Z_]+)_([0-9]+)\]")


class Blocked(InvalidRequest):
    """The policy blocks a type found in the text (400, ``code`` personal_data_blocked)."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"The request contains personal data of type {kind}, which the policy blocks.",
            code="personal_data_blocked",
        )
        self.kind = kind


class Pseudonyms:
    """Placeholders of one request or conversation, in memory only."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: Counter[str] = Counter()
        self._reserved: set[str] = set()

    def reserve(self, text: str) -> None:
        """Never hand out a placeholder already written in ``text``: restoring would change it."""
        self._reserved.update(m[0] for m in PLACEHOLDER.finditer(text))

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        token = self._by_value.get(key)
        if token is None:
            counts, reserved = self._counts, self._reserved
            while True:
                count = counts[kind] = counts[kind] + 1
                token = f"[{kind}_{count}]"
                if token not in reserved:
                    break
            self._by_value[key] = token
            self._by_placeholder[token] = value
        return token

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this object back to its value."""
        if "[" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m[0], m[0]), text)

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def state(self) -> dict[str, Any]:
        """What a conversation keeps between requests (values in clear: seal it)."""
        return {
            "values": [[kind, value, token] for (kind, value), token in self._by_value.items()],
            "counts": dict(self._counts),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Pseudonyms:
        pseudonyms = cls()
        for kind, value, token in state["values"]:
            pseudonyms._by_value[(kind, value)] = token
            pseudonyms._by_placeholder[token] = value
        pseudonyms._counts.update(state["counts"])
        return pseudonyms


@dataclass(frozen=True)
class Applied:
    """A finding and the action taken on it."""

    finding: Finding
    action: str


@dataclass(frozen=True)
class Desensitized:
    text: str
    applied: tuple[Applied, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        """{type: {action: count}}: what an audit event may record (never the values)."""
        out: dict[str, dict[str, int]] = {}
        for a in self.applied:
            per_type = out.setdefault(a.finding.type, {})
            per_type[a.action] = per_type.get(a.action, 0) + 1
        return out


def desensitize(
    text: str,
    actions: Mapping[str, str],
    pseudonyms: Pseudonyms | None = None,
    *,
    hash_key: bytes | None = None,
    find: Callable[[str], list[Finding]] = detect,
) -> Desensitized:
    """Find (a policy's ``find``, or the bare detectors), then rewrite ``text`` per
    ``actions``; raises Blocked before changing anything."""
    findings = list(find(text))
    chosen = [actions.get(f.type, "mask") for f in findings]
    if "block" in chosen:
        raise Blocked(findings[chosen.index("block")].type)
    applied = tuple(map(Applied, findings, chosen))
    pseudonyms = pseudonyms if pseudonyms is not None else Pseudonyms()
    pseudonyms.reserve(text)
    placeholder = pseudonyms.placeholder
    out, last = [], 0
    for f, action in zip(findings, chosen, strict=True):
        out.append(text[last : f.start])
        value = text[f.start : f.end]
        if action == "pseudonymize":  # the shipped policy's action for most types
            out.append(placeholder(f.type, value))
        else:
            out.append(_replacement(value, f.type, action, pseudonyms, hash_key))
        last = f.end
    out.append(text[last:])
    return Desensitized("".join(out), applied)


def _replacement(
    value: str, kind: str, action: str, pseudonyms: Pseudonyms, hash_key: bytes | None
) -> str:
    if action == "allow":
        return value
    if action == "mask":
        return mask(value, kind)
    if action == "redact":
        return f"[{kind}]"
    if action == "hash":
        if hash_key is None:
            raise SetupError("The 'hash' action needs the appliance's key: run `appliance init`.")
        digest = hmac.new(hash_key, f"{kind}:{fold(value)}".encode(), hashlib.sha256).hexdigest()
        return f"[{kind}:{digest[:16]}]"
    return pseudonyms.placeholder(kind, value)


def mask(value: str, kind: str) -> str:
    """Keep a little of each end (``138****5678``); separators stay where they are."""
    if kind == "EMAIL":
        local, _, domain = value.partition("@")
        return local[:1] + "*" * max(1, len(local) - 1) + "@" + domain
    if kind == "PERSON":  # the surname's first character, or each word's first letter
        if value.isascii():
            return " ".join(w[:1] + "*" * (len(w) - 1) for w in value.split(" "))
        return value[:1] + "*" * (len(value) - 1)
    if kind == "ADDRESS":  # the first division kept (上海市*******), the rest hidden
        cut = _first_division(value)
        return value[:cut] + "".join("*" if ch.isalnum() else ch for ch in value[cut:])
    # Digits and letters, ASCII or full-width (which fold to ASCII one for one).
    if value.isascii():
        positions = [i for i, ch in enumerate(value) if ch.isalnum()]
    else:
        folded = fold(value)
        positions = [i for i, ch in enumerate(value) if ch.isalnum() and folded[i].isascii()]
    n = len(positions)
    head, tail = (3, 4) if n >= 11 else (max(1, n // 4), max(1, n // 4))
    hidden = set(positions[head : n - tail])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(value))


_DIVISION = re.compile(r"^.{1,7}?(?:自治区|特别行政区|省|市)")


def _first_division(value: str) -> int:
    """Where the first administrative division of a Chinese address ends (0 if none)."""
    match = _DIVISION.match(value)
    return match.end() if match else 0


# The longest placeholder prefix worth holding back: a type name, "_" and a counter.
_MAX_PLACEHOLDER = 40
_PLACEHOLDER_PREFIX = re.compile(r"\[[A-Z_]*[0-9]*")


class StreamRestorer:
    """Restores placeholders in an answer that arrives in pieces (SSE deltas).

    A placeholder may be split across pieces; only a tail that could still be the start of
    one is held back (at most a few characters), everything before it is released at once.
    The concatenation of what ``feed`` and ``flush`` return equals ``restore`` of the whole.
    """

    def __init__(self, pseudonyms: Pseudonyms) -> None:
        self._pseudonyms = pseudonyms
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        cut = text.rfind("[")
        if (
            cut == -1
            or len(text) - cut > _MAX_PLACEHOLDER
            or not _PLACEHOLDER_PREFIX.fullmatch(text, cut)
        ):
            cut = len(text)
        self._held = text[cut:]
        return self._pseudonyms.restore(text[:cut])

    def flush(self) -> str:
        """The held-back tail, at the end of the answer."""
        held, self._held = self._held, ""
        return self._pseudonyms.restore(held)
