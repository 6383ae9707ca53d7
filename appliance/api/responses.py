"""The Responses API's answers through the answer pipeline, whole and streamed.

A response's texts are in its ``output`` items: a message's content parts (``output_text``,
``refusal``), a reasoning item's content and summary, a tool call's ``arguments`` (or a
custom tool's ``input``). Each is one text of the pipeline, keyed by the item's place in
``output`` and a channel: the first part of a message is the answer's ``content`` (what
the audit capture keeps), the others ``content.N``, ``reasoning.N``, ``summary.N``,
``arguments``.

Streamed, those texts come as ``*.delta`` events, each piece through the stages as a
chat chunk's is (so a placeholder split between events is restored, and a phone number
the model writes is masked, across events). Then the same texts come again, whole, in the
``*.done`` events, in ``response.output_item.done`` and in ``response.completed``: each is
replaced by what the caller was given piece by piece, and whatever a stage still held
back is released first, as one more delta event. A text seen whole before any delta
passes the stages once, whole.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from appliance.api.pipeline import AnswerPipeline, TextRef, account
from appliance.api.stages import CONTENT

# The kind of a delta event (``response.<kind>.delta``), and the field of its ``.done``
# event that holds the whole text; a kind not listed is still a text (``<kind>.N``).
DONE_FIELDS = {
    "output_text": "text",
    "refusal": "refusal",
    "reasoning_text": "text",
    "reasoning": "text",  # older vLLM
    "reasoning_summary_text": "text",
    "function_call_arguments": "arguments",
    "mcp_call_arguments": "arguments",
    "custom_tool_call_input": "input",
}
OTHER_DONE_FIELDS = ("text", "arguments", "refusal", "input", "transcript")
# Deltas that are not text (base64 audio): passed on as they are.
NOT_TEXT = frozenset({"audio", "output_audio"})
# Events whose objects hold the final state of their texts (the others hold a beginning).
FINAL = ("response.completed", "response.incomplete", "response.failed")


def response_texts(body: MutableMapping[str, Any]) -> Iterator[TextRef]:
    """Every text of a response's ``output`` items."""
    output = body.get("output")
    for position, item in enumerate(output if isinstance(output, list) else []):
        if isinstance(item, dict):
            yield from item_texts(item, position)


def item_texts(item: dict[str, Any], index: int) -> Iterator[TextRef]:
    reasoning = item.get("type") == "reasoning"
    content = item.get("content")
    for position, part in enumerate(content if isinstance(content, list) else []):
        if not isinstance(part, dict):
            continue
        channel = part_channel(part, position, reasoning=reasoning)
        for key in ("text", "refusal"):
            if isinstance(part.get(key), str):
                yield index, channel, part, key
    summary = item.get("summary")
    for position, part in enumerate(summary if isinstance(summary, list) else []):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            yield index, f"summary.{position}", part, "text"
    for key in ("arguments", "input", "output"):  # tool calls: what the model wrote for them
        if isinstance(item.get(key), str):
            yield index, key, item, key


def part_channel(part: dict[str, Any], position: int, *, reasoning: bool = False) -> str:
    if reasoning or part.get("type") == "reasoning_text":
        return f"reasoning.{position}"
    if part.get("type") == "summary_text":
        return f"summary.{position}"
    return CONTENT if position == 0 else f"content.{position}"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class ResponseEvents:
    """The events of one streamed response, each as the caller gets it."""

    answer: AnswerPipeline
    model_alias: str
    _given: dict[tuple[int, str], list[str]] = field(default_factory=dict)  # being streamed
    _final: dict[tuple[int, str], str] = field(default_factory=dict)  # settled
    _last_delta: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    carried_text: bool = False  # the last event carried text the model wrote

    def event(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The events the caller gets for one upstream event (a text a stage held back is
        released just before the event that ends it)."""
        kind = data.get("type")
        kind = kind if isinstance(kind, str) else ""
        released: list[dict[str, Any]] = []
        self.carried_text = False
        final = kind in FINAL or kind.endswith(".done")
        name = kind.removeprefix("response.").rsplit(".", 1)[0]
        if name in NOT_TEXT:
            return [data]
        if kind.endswith(".delta") and isinstance(data.get("delta"), str):
            key = self._delta_key(data, kind)
            self._last_delta[key] = data
            self.carried_text = bool(data["delta"])  # the model wrote (a token of) text
            data["delta"] = self._feed(key, data["delta"])
        elif kind.endswith(".done"):
            done_key = self._delta_key(data, f"response.{name}.delta")
            known = DONE_FIELDS.get(name)
            for field_name in (known,) if known else OTHER_DONE_FIELDS:
                if isinstance(data.get(field_name), str):
                    data[field_name] = self._settle(done_key, data[field_name], released)
                    break
        part = data.get("part")
        if isinstance(part, dict):
            index = _int(data.get("output_index"))
            position = _int(data.get("content_index", data.get("summary_index")))
            channel = part_channel(part, position)
            for text_key in ("text", "refusal"):
                if isinstance(part.get(text_key), str):
                    part[text_key] = self._take((index, channel), part[text_key], final, released)
        item = data.get("item")
        if isinstance(item, dict):
            index = _int(data.get("output_index"))
            for i, channel, place, name_of in item_texts(item, index):
                place[name_of] = self._take((i, channel), place[name_of], final, released)
        response = data.get("response")
        if isinstance(response, dict):
            for i, channel, place, name_of in response_texts(response):
                place[name_of] = self._take((i, channel), place[name_of], final, released)
            if "model" in response:
                response["model"] = self.model_alias
            if kind in FINAL and self.answer.cut:
                response["status"] = "incomplete"
                response["incomplete_details"] = {"reason": "content_filter"}
            account(self.answer.call, response)
        usage = isinstance(response, dict) and isinstance(response.get("usage"), dict)
        self.answer.generated(carried=self.carried_text, usage=usage)
        return [*released, data]

    def _delta_key(self, data: dict[str, Any], kind: str) -> tuple[int, str]:
        index = _int(data.get("output_index"))
        name = kind.removeprefix("response.").removesuffix(".delta")
        content = _int(data.get("content_index"))
        if name in ("output_text", "refusal"):
            return index, CONTENT if content == 0 else f"content.{content}"
        if name in ("reasoning_text", "reasoning"):
            return index, f"reasoning.{content}"
        if name == "reasoning_summary_text":
            return index, f"summary.{_int(data.get('summary_index'))}"
        if name in ("function_call_arguments", "mcp_call_arguments"):
            return index, "arguments"
        if name == "custom_tool_call_input":
            return index, "input"
        return index, f"{name}.{content}"

    def _feed(self, key: tuple[int, str], text: str) -> str:
        """A piece of a text that goes on: what the caller gets of it now."""
        if key in self._final:
            return ""  # settled already: nothing more of it reaches the caller
        out = self.answer.text(key[0], key[1], text, last=False)
        self._given.setdefault(key, []).append(out)
        return out

    def _take(
        self, key: tuple[int, str], text: str, final: bool, released: list[dict[str, Any]]
    ) -> str:
        if final:
            return self._settle(key, text, released)
        if key in self._final:
            return self._final[key]
        return self._feed(key, text) if text else text

    def _settle(self, key: tuple[int, str], text: str, released: list[dict[str, Any]]) -> str:
        """The whole of a text: what the caller was given of it, and what was held back."""
        if key in self._final:
            return self._final[key]
        if key in self._given:
            held = self.answer.text(key[0], key[1], "", last=True)
            given = self._given.pop(key)
            if held and key in self._last_delta:
                delta = copy.deepcopy(self._last_delta[key])
                delta["delta"] = held
                released.append(delta)
            whole = "".join(given) + held
        else:
            whole = self.answer.text(key[0], key[1], text, last=True)
        self._final[key] = whole
        return whole
