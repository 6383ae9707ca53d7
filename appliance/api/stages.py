"""What an answer stage sees, and the stages that only record the answer.

The privacy stages (output scan, restore) are in ``desensitize``; the order of all of
them is ``pipeline.prepare_request``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.api.context import ApiCall
from appliance.audit.content import ContentCapture

CONTENT = "content"  # the answer's text; the other channels are its reasoning and tool calls
REASONING = "reasoning_content"


@dataclass
class Piece:
    """A piece of one text of one choice, as it passes the answer stages.

    A choice has several texts (``channel``): its content, its reasoning (DeepSeek-R1's
    ``reasoning_content``) and the arguments of each tool call (``tool_calls.N``). Every
    one passes the privacy stages; the audit and training captures keep the content."""

    index: int  # the choice
    model: str  # what the model wrote, as the stages so far left it
    last: bool  # nothing follows for this text: release what was held back
    caller: str | None = None  # what the caller gets, once a stage made it differ
    channel: str = CONTENT

    @property
    def out(self) -> str:
        return self.model if self.caller is None else self.caller

    @property
    def key(self) -> tuple[int, str]:
        """What a stage that holds text back across pieces keys its state by."""
        return self.index, self.channel


class TextStage(Protocol):
    def __call__(self, piece: Piece) -> None: ...


@dataclass
class AuditCapture:
    """The texts the audit event keeps, when the privacy policy says to keep them."""

    capture: ContentCapture

    def __call__(self, piece: Piece) -> None:
        if piece.channel == CONTENT:
            self.capture.answer_text(piece.index, piece.model, piece.out)


@dataclass
class TrainingCaptureStage:
    """The answer as the model wrote it, for an opted-in key's training capture."""

    call: ApiCall

    def __call__(self, piece: Piece) -> None:
        if self.call.training is not None and piece.channel == CONTENT:
            self.call.training.answer_text(piece.index, piece.model)
