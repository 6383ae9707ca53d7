"""Relaying an upstream's server-sent events to the client, counting usage as they pass."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from appliance.api import metrics
from appliance.api.context import ApiCall
from appliance.api.pipeline import AnswerPipeline
from appliance.api.responses import ResponseEvents
from appliance.errors import ApplianceError, UpstreamError
from appliance.upstream.client import UpstreamStream

DONE = b"data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def relay(
    upstream: UpstreamStream,
    *,
    call: ApiCall,
    answer: AnswerPipeline,
    model_alias: str,
    client_wants_usage: bool,
    on_finish: Callable[[str], None],
    started: float | None = None,
) -> Iterator[bytes]:
    """Yield the client's SSE stream; ``on_finish(outcome)`` runs whatever happens.

    Each chunk passes the same answer pipeline as a whole answer does.

    The upstream is always asked for usage so every request is accounted; the usage
    chunk is passed on only if the client asked for it; a stream that ends without one
    (an engine killed mid-answer) is accounted with the chunks it sent. A client that
    goes away closes this generator, which closes the upstream response and so cancels
    the generation.
    """
    outcome = "unknown"  # the client disconnected before the end
    first_token_seen = False
    metrics.stream_started()
    try:
        done = False
        # Read on past [DONE] to the end of the response (servers end it right there), so
        # the connection goes back to the pool instead of being dropped.
        for line in upstream.iter_lines():
            if done or not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                continue
            chunk = _parse(data)
            if "error" in chunk:
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else None
                raise UpstreamError(str(message or "The upstream failed mid-stream."))
            answer.chunk(chunk)
            if not first_token_seen and started is not None and _has_content(chunk):
                first_token_seen = True
                ttft = time.perf_counter() - started
                metrics.observe_ttft(model_alias, ttft)
                call.details["ttft_ms"] = round(ttft * 1000, 3)
            if _forward(chunk, client_wants_usage):
                chunk["model"] = model_alias
                yield sse(chunk)
            if answer.cut and answer.single_choice:
                break  # the content filter ended the only choice: stop generating
        yield DONE
        outcome = "success"
    except ApplianceError as exc:
        outcome = "failure"
        call.details["error"] = exc.message
        yield sse(exc.to_openai())
        yield DONE
    finally:
        metrics.stream_ended()
        upstream.close()
        answer.end_stream()
        on_finish(outcome)


def sse_event(data: dict[str, Any]) -> bytes:
    """A named event, as the Responses API streams them (``event: <type>``)."""
    kind = str(data.get("type") or "message").replace("\n", " ")
    return (
        b"event: "
        + kind.encode()
        + b"\ndata: "
        + json.dumps(data, separators=(",", ":")).encode()
        + b"\n\n"
    )


def relay_events(
    upstream: UpstreamStream,
    *,
    call: ApiCall,
    events: ResponseEvents,
    on_finish: Callable[[str], None],
    started: float | None = None,
) -> Iterator[bytes]:
    """Yield a streamed response of the Responses API; ``on_finish(outcome)`` runs whatever
    happens. Each event passes ``events`` (the answer pipeline); the stream ends with the
    upstream's (no ``[DONE]``), and a failure mid-stream is an ``error`` event."""
    outcome = "unknown"
    metrics.stream_started()
    first_token_seen = False
    try:
        for line in upstream.iter_lines():
            if not line.startswith("data:"):
                continue  # `event:` lines: each event's type is in its data, and written anew
            data = line[5:].strip()
            if data == "[DONE]":
                continue
            event = _parse(data)
            if event.get("type") == "error" or "error" in event:
                error = event.get("error") if isinstance(event.get("error"), dict) else event
                message = error.get("message") if isinstance(error, dict) else None
                raise UpstreamError(str(message or "The upstream failed mid-stream."))
            for out in events.event(event):
                yield sse_event(out)
            if not first_token_seen and started is not None and events.carried_text:
                first_token_seen = True
                ttft = time.perf_counter() - started
                metrics.observe_ttft(events.model_alias, ttft)
                call.details["ttft_ms"] = round(ttft * 1000, 3)
        outcome = "success"
    except ApplianceError as exc:
        outcome = "failure"
        call.details["error"] = exc.message
        # OpenAI's error event: the error's fields at the top, its kind as the code
        yield sse_event(
            {
                "type": "error",
                "code": exc.code or exc.type,
                "message": exc.message,
                "param": exc.param,
            }
        )
    finally:
        metrics.stream_ended()
        upstream.close()
        events.answer.end_stream()
        on_finish(outcome)


def _has_content(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if text:
            return True
    return False


def _parse(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise UpstreamError("The upstream sent an event that is not JSON.") from None
    if not isinstance(chunk, dict):
        raise UpstreamError("The upstream sent an event that is not a JSON object.")
    return chunk


def _forward(chunk: dict[str, Any], client_wants_usage: bool) -> bool:
    if client_wants_usage:
        return True
    chunk.pop("usage", None)
    return bool(chunk.get("choices"))
