"""Desensitizing JSON-lines datasets in batch: scan lines and fine-tune training data.

A record is one of

- ``{"text": ...}``: the scan contract; the result is ``{"findings": [...], "text": ...}``
  (a blocked type is redacted: every input line gets its output line), with
  ``"explain": [...]`` too when asked (every finding and near miss, and why);
- ``{"messages": [{"role", "content"}, ...]}`` (chat fine-tuning data) or
  ``{"prompt": ..., "completion": ...}``: the same record with every text desensitized,
  one set of pseudonyms per record so a conversation stays consistent; a record holding a
  type the policy blocks is dropped, since it must not reach a training set at all.

The report counts records, dropped records and findings per type: never values.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import InvalidRequest
from appliance.privacy.explain import explain
from appliance.privacy.policy import PrivacyPolicy
from appliance.privacy.transform import Blocked, Pseudonyms, desensitize


@dataclass
class DatasetReport:
    records: int = 0
    dropped: int = 0  # records holding a type the policy blocks
    found: Counter[str] = field(default_factory=Counter)  # findings per type

    def summary(self) -> str:
        per_type = ", ".join(f"{k} {v}" for k, v in sorted(self.found.items())) or "none"
        return (
            f"{self.records} records, {self.dropped} dropped (blocked types); "
            f"personal data found: {per_type}"
        )


class DatasetScanner:
    """Desensitizes records with a policy's default actions (no caller, so no overrides)."""

    def __init__(
        self, policy: PrivacyPolicy, hash_key: bytes | None, *, explained: bool = False
    ) -> None:
        self.policy = policy
        self.explained = explained  # text lines also carry ``explain`` (see privacy.explain)
        self.hash_key = hash_key
        self.actions = policy.actions_for()
        # Scanning a text line reports a blocked type and redacts it: there is no request.
        self.text_actions = {k: "redact" if a == "block" else a for k, a in self.actions.items()}
        self.report = DatasetReport()

    def lines(self, numbered: Iterable[tuple[int, str]], *, text_only: bool) -> Iterator[str]:
        """Output lines for input lines (blank ones skipped); raises InvalidRequest naming a
        malformed line."""
        for number, line in numbered:
            if not line.strip():
                continue
            result = self.record(number, _parse(number, line), text_only=text_only)
            if result is not None:
                yield json.dumps(result, ensure_ascii=False) + "\n"

    def record(self, number: int, record: Any, *, text_only: bool = False) -> dict[str, Any] | None:
        """The output record for one input record (None: dropped for a blocked type)."""
        self.report.records += 1
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            return self._text(record["text"])
        if text_only or not _is_training_record(record):
            shapes = '"text"' if text_only else '"text", "messages" or "prompt"/"completion"'
            raise InvalidRequest(f"line {number}: expected an object with a string {shapes}")
        return self._training(number, record)

    def _text(self, text: str) -> dict[str, Any]:
        result = desensitize(text, self.text_actions, hash_key=self.hash_key, find=self.policy.find)
        self.report.found.update(a.finding.type for a in result.applied)
        findings = [
            {
                "start": a.finding.start,
                "end": a.finding.end,
                "type": a.finding.type,
                "action": self.actions[a.finding.type],
            }
            for a in result.applied
        ]
        out: dict[str, Any] = {"findings": findings, "text": result.text}
        if self.explained:
            out["explain"] = [e.as_dict() for e in explain(self.policy, text)]
        return out

    def _training(self, number: int, record: dict[str, Any]) -> dict[str, Any] | None:
        out = copy.deepcopy(record)
        pseudonyms, found = Pseudonyms(), Counter[str]()

        def clean(text: str) -> str:
            result = desensitize(
                text, self.actions, pseudonyms, hash_key=self.hash_key, find=self.policy.find
            )
            found.update(a.finding.type for a in result.applied)
            return result.text

        try:
            for holder, key in _texts(number, out):
                holder[key] = clean(holder[key])
        except Blocked as exc:
            self.report.dropped += 1
            self.report.found[exc.kind] += 1
            return None
        self.report.found.update(found)
        return out


def _parse(number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise InvalidRequest(f"line {number}: not JSON") from None


def _is_training_record(record: Any) -> bool:
    return isinstance(record, dict) and (
        isinstance(record.get("messages"), list) or isinstance(record.get("prompt"), str)
    )


def _texts(number: int, record: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every text of a training record, checking its shape."""
    if isinstance(record.get("prompt"), str):
        yield record, "prompt"
        if isinstance(record.get("completion"), str):
            yield record, "completion"
        return
    for i, message in enumerate(record["messages"]):
        if not isinstance(message, dict) or "content" not in message:
            raise InvalidRequest(f"line {number}: messages[{i}] must be an object with content")
        content = message["content"]
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"
        elif content is not None:
            raise InvalidRequest(f"line {number}: messages[{i}].content must be text or parts")
