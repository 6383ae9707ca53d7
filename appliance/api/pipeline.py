"""The two sides of a forwarded call, each one ordered list of stages.

Request side (``prepare_request``), on the payload before any upstream sees it:

    content screen → audit capture → desensitize → training capture

Answer side (``AnswerPipeline``), the same for a whole answer and for each streamed chunk:

    for each text of each choice (content, reasoning, tool-call arguments):
        output scan → restore → content filter → audit capture → training capture
    then accounting: usage and finish reason, for the limits and the audit event

Where an answer's texts are depends on its shape (``Texts``): the choices of chat and
text completions (``choice_texts``), the output items of the Responses API
(``appliance.api.responses``), the documents a rerank echoes, a transcript.

A stage of the answer side is a ``TextStage``: it sees one ``Piece`` of one choice's text
at a time (a whole answer is one piece that is also the last) and may change what the
model wrote (``Piece.model``), what the caller gets (``Piece.caller``), or only record
them. A stage that must hold text back across pieces (a value split between chunks) keeps
its own state per choice and releases it when ``last`` is true. The call is settled
(limits charged, audit event queued) by ``accounting.finish_call`` once the response is
closed, whether it was whole or streamed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from appliance.api.content import ContentFilter, screen_request
from appliance.api.context import ApiCall
from appliance.api.desensitize import OutputScan, Restore, desensitize_request
from appliance.api.stages import (
    CONTENT,
    REASONING,
    AuditCapture,
    Piece,
    TextStage,
    TrainingCaptureStage,
)
from appliance.audit.content import ContentCapture
from appliance.auth.principal import Principal
from appliance.content.policy import ContentPolicy
from appliance.finetune.capture import start_capture
from appliance.finetune.policy import FinetunePolicy
from appliance.privacy.conversations import ConversationStore
from appliance.privacy.policy import PrivacyPolicy

# (choice or output index, channel, the dict holding a text, its key) of each text of an answer.
TextRef = tuple[int, str, MutableMapping[str, Any], str]
Texts = Callable[[MutableMapping[str, Any]], Iterator[TextRef]]


@dataclass
class AnswerPipeline:
    """Every text of an answer through the stages, then the answer's accounting."""

    call: ApiCall
    stages: list[TextStage]
    content: ContentFilter | None = None  # one of the stages: it may cut a choice
    single_choice: bool = False  # the answer has one choice (n=1, one prompt)
    # The texts of each choice a stream has started and not yet finished.
    _open: dict[int, set[str]] = field(default_factory=dict)
    # A stream's choice chunks that carried text (one token each, as vLLM streams them),
    # and whether the upstream sent usage of its own.
    _generated: int = 0
    _usage_seen: bool = False

    def whole(self, result: MutableMapping[str, Any], texts: Texts | None = None) -> None:
        """A non-streamed answer, in place; its texts are where ``texts`` finds them
        (default: the choices of a chat or text completion)."""
        for index, channel, holder, key in (texts or choice_texts)(result):
            holder[key] = self.text(index, channel, holder[key], last=True)
        if self.content is not None and self.content.blocked:
            for position, choice in enumerate(_choices(result)):
                if _index(choice, position) in self.content.blocked:
                    choice["finish_reason"] = "content_filter"
            if result.get("object") == "response":
                result["status"] = "incomplete"
                result["incomplete_details"] = {"reason": "content_filter"}
        account(self.call, result)

    def chunk(self, chunk: MutableMapping[str, Any]) -> None:
        """One streamed chunk, in place; a choice's last chunk releases what was held. A
        choice the content filter cut ends with ``content_filter``; its chunks after that
        are dropped."""
        cut = self.content.blocked if self.content is not None else {}
        if cut and isinstance(chunk.get("choices"), list):
            chunk["choices"] = [
                c for c in chunk["choices"] if not (isinstance(c, dict) and _index(c, 0) in cut)
            ]
        for choice in _choices(chunk):
            index = _index(choice, 0)
            last = bool(choice.get("finish_reason"))
            opened = self._open.setdefault(index, set())
            seen = set()
            carried = False
            for _, channel, holder, key in _texts_of(choice, index, "delta"):
                seen.add(channel)
                carried = carried or bool(holder[key])
                opened.add(channel)
                holder[key] = self.text(index, channel, holder[key], last=last)
            if index in cut:  # cut by this chunk: its end
                choice["finish_reason"] = "content_filter"
                self._open.pop(index, None)
                self._generated += carried
                continue
            if last:
                for channel in sorted(opened - seen):  # held back, and nothing more comes
                    if held := self.text(index, channel, "", last=True):
                        _put(choice, channel, held)
                self._open.pop(index, None)
            self._generated += carried
        self._usage_seen = self._usage_seen or isinstance(chunk.get("usage"), dict)
        account(self.call, chunk)

    @property
    def cut(self) -> bool:
        """The content filter cut a choice (a stream of one choice is over)."""
        return self.content is not None and bool(self.content.blocked)

    def end_stream(self) -> None:
        """A stream is over, whole or cut: without the upstream's usage, count what it sent.

        An engine killed mid-answer sends no usage block; its chunks that carried text
        are then the completion tokens charged and audited (``usage_source: counted``).
        """
        if not self._usage_seen:
            self.call.completion_tokens = self._generated
            self.call.details["usage_source"] = "counted"

    def generated(self, *, carried: bool, usage: bool) -> None:
        """A streamed event of another shape (the Responses API's): did it carry text, or
        the upstream's usage."""
        self._generated += carried
        self._usage_seen = self._usage_seen or usage

    def text(self, index: int, channel: str, text: str, *, last: bool) -> str:
        """One piece of one text through the stages: what the caller gets of it."""
        piece = Piece(index, text, last, channel=channel)
        for stage in self.stages:
            stage(piece)
        return piece.out


def prepare_request(
    call: ApiCall,
    principal: Principal,
    payload: dict[str, Any],
    *,
    alias: str,
    privacy: PrivacyPolicy,
    privacy_key: bytes,
    content_key: bytes,
    finetune: FinetunePolicy,
    conversation: tuple[ConversationStore, str] | None = None,
    chat: bool = False,
    content: ContentPolicy | None = None,
    canary_key: bytes = b"",
    system_prompt_at: str | None = None,
) -> AnswerPipeline:
    """Run the request side on ``payload`` in place; return the answer side that mirrors it.

    Raises ``ContentBlocked`` (400) when the content policy refuses a term of the request,
    ``Blocked`` (400) when the privacy policy refuses a type found in it.
    """
    outbound = (
        screen_request(
            content,
            principal,
            call,
            payload,
            alias=alias,
            canary_key=canary_key,
            system_prompt_at=system_prompt_at,
        )
        if content is not None
        else None
    )
    if privacy.audit_content != "none":
        call.capture = ContentCapture(privacy.audit_content, content_key)
    pseudonyms = desensitize_request(
        privacy, principal, call, payload, privacy_key, conversation=conversation
    )
    if chat:
        call.training = start_capture(
            finetune, alias, principal.key_prefix, payload.get("messages")
        )
    stages: list[TextStage] = []
    if privacy.output != "allow":
        stages.append(OutputScan(privacy, call))
    if privacy.restore:
        stages.append(Restore(pseudonyms))
    content_filter = ContentFilter(outbound, call) if outbound is not None else None
    if content_filter is not None:
        stages.append(content_filter)
    if call.capture is not None:
        stages.append(AuditCapture(call.capture))
    if call.training is not None:
        stages.append(TrainingCaptureStage(call))
    prompt = payload.get("prompt")
    several = isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], list | str)
    single = payload.get("n") in (None, 1) and not several
    return AnswerPipeline(call, stages, content_filter, single_choice=single)


def account(call: ApiCall, body: MutableMapping[str, Any]) -> None:
    """Usage and finish reason of a whole answer or of one chunk, for the call's event.

    Usage comes as OpenAI's completions report it (``prompt_tokens``, ``completion_tokens``),
    as the Responses API does (``input_tokens``, ``output_tokens``), or as a rerank does
    (``total_tokens`` only: all of them the input's); a transcription may report the
    seconds of audio instead.
    """
    usage = body.get("usage")
    if isinstance(usage, dict):
        prompt = _count(usage, "prompt_tokens", "input_tokens")
        completion = _count(usage, "completion_tokens", "output_tokens")
        if prompt is None and completion is None:
            prompt = _count(usage, "total_tokens")
        if prompt is not None:
            call.prompt_tokens = prompt
        if completion is not None:
            call.completion_tokens = completion
        seconds = usage.get("seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            call.details["audio_seconds"] = seconds
    reasons = [c["finish_reason"] for c in _choices(body) if c.get("finish_reason")]
    if reasons:
        call.details["finish_reason"] = reasons[0]
    elif body.get("object") == "response" and isinstance(body.get("status"), str):
        call.details["finish_reason"] = body["status"]


def _count(usage: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def choice_texts(body: MutableMapping[str, Any]) -> Iterator[TextRef]:
    """The texts of a chat or text completion's choices (a transcription stream's too)."""
    return _texts(body, "message")


def rerank_texts(body: MutableMapping[str, Any]) -> Iterator[TextRef]:
    """The documents a rerank echoes in its results (what it was sent: restored)."""
    results = body.get("results")
    for position, result in enumerate(results if isinstance(results, list) else []):
        document = result.get("document") if isinstance(result, dict) else None
        if isinstance(document, dict) and isinstance(document.get("text"), str):
            yield _index(result, position), "document", document, "text"
        elif isinstance(document, str):  # Cohere's v1 shape
            yield _index(result, position), "document", result, "document"


def transcript_texts(body: MutableMapping[str, Any]) -> Iterator[TextRef]:
    """A transcript's text (``text``, a plain-text answer wrapped the same way), and the
    text of each of its ``verbose_json`` segments."""
    if isinstance(body.get("text"), str):
        yield 0, CONTENT, body, "text"
    segments = body.get("segments")
    for position, segment in enumerate(segments if isinstance(segments, list) else []):
        if isinstance(segment, dict) and isinstance(segment.get("text"), str):
            yield 0, f"segment.{position}", segment, "text"


def _choices(body: MutableMapping[str, Any]) -> Iterator[dict[str, Any]]:
    choices = body.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, dict):
            yield choice


def _index(choice: dict[str, Any], default: int) -> int:
    index = choice.get("index")
    return index if isinstance(index, int) else default


def _texts(
    body: MutableMapping[str, Any], message_key: str
) -> Iterator[tuple[int, str, dict[str, Any], str]]:
    """(choice index, channel, the dict holding a text, its key) for every text of every
    choice: content, reasoning, each tool call's arguments, a completion's text."""
    for position, choice in enumerate(_choices(body)):
        yield from _texts_of(choice, _index(choice, position), message_key)


def _texts_of(
    choice: dict[str, Any], index: int, message_key: str
) -> Iterator[tuple[int, str, dict[str, Any], str]]:
    message = choice.get(message_key)
    if isinstance(message, dict):
        for key in (CONTENT, REASONING):
            if isinstance(message.get(key), str):
                yield index, key, message, key
        calls = message.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                number = _index(call, position)  # a streamed delta names its call
                yield index, f"tool_calls.{number}", function, "arguments"
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
            yield index, "function_call", legacy, "arguments"
    if isinstance(choice.get("text"), str):
        yield index, "text", choice, "text"


def _put(choice: dict[str, Any], channel: str, text: str) -> None:
    """Text held back for ``channel`` into a choice's last chunk (which did not carry it)."""
    if channel == "text":
        choice["text"] = text
        return
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        delta = choice["delta"] = {}
    if channel.startswith("tool_calls."):
        number = int(channel.split(".", 1)[1])
        delta.setdefault("tool_calls", []).append(
            {"index": number, "function": {"arguments": text}}
        )
    elif channel == "function_call":
        delta.setdefault("function_call", {})["arguments"] = text
    else:
        delta[channel] = text
