"""Tool calls out of a model's text, as vLLM's Hermes parser (``--tool-call-parser hermes``)
reads them, streamed as vLLM streams them.

A call is ``<tool_call>`` and a JSON object ``{"name": ..., "arguments": {...}}`` then
``</tool_call>``: the layout of Hermes and Qwen models and of the tiny model's template, and the
one ``structured.tool_call_guide`` makes the model write. Text outside calls is the message's
content (whitespace next to a call is dropped). ``ToolCallParser`` is fed the text as it comes
and returns deltas in the shape of ``chat.completion.chunk``: a call's first delta has its
``index``, an ``id`` (``chatcmpl-tool-...`` as vLLM makes them), ``type`` and the function's
``name`` with empty ``arguments``, the following ones fragments of ``arguments``. The arguments
are the model's JSON with the whitespace between tokens removed and ``", "`` and ``": "`` as
separators (what ``json.dumps`` writes, as vLLM returns them). A whole answer is the same
parser fed the whole text, so streamed and whole answers agree.

A call written in another layout (the keys the other way round, say: possible when a request's
own guide, not the tools', shapes the text) is read whole at ``</tool_call>``, as vLLM's parser
reads it. With ``parallel_tool_calls`` false only the first call is kept (as vLLM keeps it).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from appliance.engine.structured import TOOL_CALL_END, TOOL_CALL_START

# The start of a call in the usual layout: the name, then the arguments follow.
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


def tool_call_id() -> str:
    """A new call id, as vLLM's: ``chatcmpl-tool-`` and 32 hex digits."""
    return f"chatcmpl-tool-{uuid.uuid4().hex}"


def _held_prefix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str = ""

    def message_shape(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class _Arguments:
    """Streams a JSON value with the whitespace between its tokens normalised, and tells
    where it ends (the rest of the text is the call's tail)."""

    def __init__(self) -> None:
        self.depth, self.in_string, self.escaped, self.done = 0, False, False, False
        self.started = False

    def feed(self, text: str) -> tuple[str, str]:
        """(normalised part of ``text`` that belongs to the value, what follows the value)."""
        out: list[str] = []
        for i, ch in enumerate(text):
            if self.in_string:
                out.append(ch)
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
                    if self.depth == 0:
                        self.done = True
                        return "".join(out), text[i + 1 :]
                continue
            if ch.isspace():
                continue
            if self.depth == 0 and self.started and ch in ",}]":
                self.done = True  # a scalar value ended
                return "".join(out), text[i:]
            self.started = True
            if ch == '"':
                self.in_string = True
                out.append(ch)
            elif ch in "{[":
                self.depth += 1
                out.append(ch)
            elif ch in "}]":
                self.depth -= 1
                out.append(ch)
                if self.depth <= 0:
                    self.done = True
                    return "".join(out), text[i + 1 :]
            elif ch == ",":
                out.append(", ")
            elif ch == ":":
                out.append(": ")
            else:
                out.append(ch)
        return "".join(out), ""


class ToolCallParser:
    """Content and tool calls of one answer; ``mode`` is the request's tool choice ("auto",
    "required" or "named"), ``parallel`` its ``parallel_tool_calls``."""

    def __init__(self, mode: str, parallel: bool = True) -> None:
        self.mode, self.parallel = mode, parallel
        self.calls: list[ToolCall] = []
        self._content: list[str] = []
        self._buffer = ""
        self._state = "text"  # text, head, arguments, tail
        self._spaces = ""  # trailing whitespace of the content, held until it is followed
        self._args: _Arguments | None = None
        self._ignoring = False  # a call past the first with parallel_tool_calls false
        self._after_call = False  # whitespace right after a call is not content either

    # ----------------------------------------------------------------- results

    @property
    def content(self) -> str | None:
        """The message's content: the text outside calls (vLLM: "" for a required or named
        choice, None when an "auto" answer is only calls)."""
        text = "".join(self._content)
        if self.calls and not text:
            return None if self.mode == "auto" else ""
        return text

    def tool_calls(self) -> list[dict[str, Any]]:
        return [call.message_shape() for call in self.calls]

    # ----------------------------------------------------------------- parsing

    def feed(self, text: str) -> list[dict[str, Any]]:
        """The deltas that ``text`` (the next part of the answer) completes."""
        self._buffer += text
        deltas: list[dict[str, Any]] = []
        while self._step(deltas):
            pass
        return deltas

    def finish(self) -> list[dict[str, Any]]:
        """The deltas of what was held back, once the answer has ended."""
        deltas: list[dict[str, Any]] = []
        if self._state == "text":
            self._text(self._buffer, deltas)
        elif self._state == "head":
            self._text(TOOL_CALL_START + self._buffer, deltas)  # not a call after all
        self._buffer = ""
        if not self.calls:
            self._emit_content(self._spaces, deltas)
        self._spaces = ""
        return deltas

    def _step(self, deltas: list[dict[str, Any]]) -> bool:
        """Consume what can be decided of the buffer; True if it may go on."""
        if self._state == "text":
            start = self._buffer.find(TOOL_CALL_START)
            if start < 0:
                keep = _held_prefix(self._buffer, TOOL_CALL_START)
                cut = len(self._buffer) - keep
                self._text(self._buffer[:cut], deltas)
                self._buffer = self._buffer[cut:]
                return False
            self._text(self._buffer[:start], deltas)
            self._spaces = ""  # whitespace before a call is not content
            self._buffer = self._buffer[start + len(TOOL_CALL_START) :]
            self._state = "head"
            return True
        if self._state == "head":
            return self._head(deltas)
        if self._state == "arguments":
            assert self._args is not None
            part, rest = self._args.feed(self._buffer)
            self._buffer = rest
            if part:
                self._arguments(part, deltas)
            if not self._args.done:
                return False
            self._state = "tail"
            return True
        end = self._buffer.find(TOOL_CALL_END)  # tail: the rest of the call's object
        if end < 0:
            keep = _held_prefix(self._buffer, TOOL_CALL_END)
            self._buffer = self._buffer[len(self._buffer) - keep :] if keep else ""
            return False
        self._end_call(self._buffer[end + len(TOOL_CALL_END) :])
        return True

    def _head(self, deltas: list[dict[str, Any]]) -> bool:
        match = _HEAD.match(self._buffer)
        if match:
            try:
                name = json.loads(f'"{match.group(1)}"')
            except ValueError:
                name = match.group(1)
            self._start_call(name, deltas)
            self._buffer = self._buffer[match.end() :]
            self._args = _Arguments()
            self._state = "arguments"
            return True
        end = self._buffer.find(TOOL_CALL_END)
        if end < 0:
            return False
        inner, after = self._buffer[:end], self._buffer[end + len(TOOL_CALL_END) :]
        try:  # another layout: read the call whole, as vLLM's parser does
            call = json.loads(inner)
            name, arguments = call["name"], call.get("arguments", {})
            if not isinstance(name, str):
                raise TypeError(name)
        except (ValueError, TypeError, KeyError):
            self._state = "text"
            self._text(TOOL_CALL_START + inner + TOOL_CALL_END, deltas)
            self._buffer = after
            return True
        self._start_call(name, deltas)
        self._arguments(json.dumps(arguments, ensure_ascii=False), deltas)
        self._end_call(after)
        return True

    def _start_call(self, name: str, deltas: list[dict[str, Any]]) -> None:
        self._spaces = ""
        self._ignoring = bool(self.calls) and not self.parallel
        if self._ignoring:
            return
        call = ToolCall(tool_call_id(), name)
        self.calls.append(call)
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": len(self.calls) - 1,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        )

    def _arguments(self, part: str, deltas: list[dict[str, Any]]) -> None:
        if self._ignoring or not part:
            return
        self.calls[-1].arguments += part
        index = len(self.calls) - 1
        deltas.append({"tool_calls": [{"index": index, "function": {"arguments": part}}]})

    def _end_call(self, after: str) -> None:
        self._state, self._buffer, self._args = "text", after, None
        self._ignoring, self._after_call = False, True

    def _text(self, text: str, deltas: list[dict[str, Any]]) -> None:
        """Content; trailing whitespace waits to see whether a call follows."""
        if self._after_call and not self._content:
            text = text.lstrip()
        if not text:
            return
        self._after_call = False
        text = self._spaces + text
        body = text.rstrip()
        self._spaces = text[len(body) :]
        self._emit_content(body, deltas)

    def _emit_content(self, text: str, deltas: list[dict[str, Any]]) -> None:
        if text:
            self._content.append(text)
            deltas.append({"content": text})


def finish_reason(mode: str, generated: str | None, parser: ToolCallParser) -> str | None:
    """A choice's ``finish_reason``: "tool_calls" when an "auto" or "required" answer made
    calls and ended by itself; a named choice ends with "stop" (OpenAI's, and vLLM's since
    vllm-project/vllm#25054); "length" (a cut answer) is kept as it is."""
    if parser.calls and mode != "named" and generated == "stop":
        return "tool_calls"
    return generated
