"""Opt-in capture of API conversations as training data for an alias.

Only for keys the alias's policy lists (``capture.keys``), only chat completions, and only
the texts as the model saw and wrote them: the prompt after desensitization and the
answer before placeholders are restored. Stored when the call succeeded, kept for the
policy's ``retention_days``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from appliance.db import Database
from appliance.finetune.datasets import captures, store_captured
from appliance.finetune.policy import Capture, FinetunePolicy

log = logging.getLogger(__name__)


@dataclass
class TrainingCapture:
    alias: str
    key_prefix: str
    rule: Capture
    messages: list[dict[str, Any]] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)

    def answer_text(self, index: int, from_model: str) -> None:
        if index == 0 and from_model:  # the first choice is the conversation's answer
            self.answer.append(from_model)


def start_capture(
    policy: FinetunePolicy,
    alias: str,
    key_prefix: str | None,
    desensitized_messages: Any,
) -> TrainingCapture | None:
    """A capture for this call if the alias's policy opts this key in, else None."""
    entry = policy.for_alias(alias)
    if entry is None or key_prefix is None or not captures(entry.capture, key_prefix):
        return None
    if not isinstance(desensitized_messages, list):
        return None
    return TrainingCapture(alias, key_prefix, entry.capture, copy.deepcopy(desensitized_messages))


def store(db: Database, capture: TrainingCapture) -> None:
    """Keep the conversation; a failure is logged, never shown to the caller."""
    try:
        with db.session() as session:
            store_captured(
                session,
                capture.alias,
                capture.messages,
                "".join(capture.answer),
                key_prefix=capture.key_prefix,
                rule=capture.rule,
            )
            session.commit()
    except Exception:
        log.exception("could not store the captured conversation for %s", capture.alias)
