"""What an answer stage sees, and the stages that only record the answer.

The privacy stages (output scan, restore) are in ``desensitize``; the order of all of
them is ``pipeline.prepare_request``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.api.context import ApiCall
from appliance.audit.content import ContentCapture


@dataclass
class Piece:
    """A piece of the text of one choice, as it passes the answer stages."""

    index: int  # the choice
    model: str  # what the model wrote, as the stages so far left it
    last: bool  # nothing follows for this choice: release what was held back
    caller: str | None = None  # what the caller gets, once a stage made it differ

    @property
    def out(self) -> str:
        return self.model if self.caller is None else self.caller


class TextStage(Protocol):
    def __call__(self, piece: Piece) -> None: ...


@dataclass
class AuditCapture:
    """The texts the audit event keeps, when the privacy policy says to keep them."""

    capture: ContentCapture

    def __call__(self, piece: Piece) -> None:
        self.capture.answer_text(piece.index, piece.model, piece.out)


@dataclass
class TrainingCaptureStage:
    """The answer as the model wrote it, for an opted-in key's training capture."""

    call: ApiCall

    def __call__(self, piece: Piece) -> None:
        if self.call.training is not None:
            self.call.training.answer_text(piece.index, piece.model)
