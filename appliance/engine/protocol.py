"""The OpenAI request subset the engine accepts, and the response shapes it returns.

Requests are pydantic models (unknown fields are accepted and ignored); responses
are plain dicts built to match OpenAI's JSON exactly, so any OpenAI SDK parses them.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


@dataclass(frozen=True)
class SamplingParams:
    """What a request may set; ``temperature`` 0 means greedy.

    ``max_tokens`` None means ``DEFAULT_MAX_TOKENS`` or what the context has room for.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", tuple(s for s in stop if s))


class ModelCard(Protocol):
    """What ``GET /v1/models`` lists of a loaded adapter (``adapters.Adapter`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def created(self) -> int: ...


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The content as one string (text parts joined)."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Lenient):
    include_usage: bool = False


class _SamplingRequest(_Lenient):
    model: str
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = 1

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, n: int | None) -> int | None:
        if n not in (None, 1):
            raise ValueError("only n=1 is supported")
        return n

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences are supported")
        return stop

    def _max_tokens(self) -> int | None:
        return self.max_tokens

    def sampling(self) -> SamplingParams:
        """The engine's parameters for this request (defaults filled in)."""
        stop = self.stop or ()
        return SamplingParams(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            max_tokens=self._max_tokens(),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            seed=self.seed,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def _max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def chat_messages(self) -> list[dict[str, str]]:
        """Messages as the chat template expects them."""
        return [{"role": m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_SamplingRequest):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("exactly one prompt is supported")
        return prompt

    def prompt_text(self) -> str:
        return self.prompt[0] if isinstance(self.prompt, list) else self.prompt


class TokenizeRequest(_Lenient):
    """vLLM's ``POST /tokenize``: chat ``messages`` (the template applied) or a ``prompt``."""

    model: str
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: str | None = None

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either messages or prompt")
        return self

    def chat_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages or []]


class EmbeddingRequest(_Lenient):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or any(v == [] for v in value)):
            raise ValueError("the input must not be empty")
        return value

    def items(self) -> list[str | list[int]]:
        """The inputs, one per embedding: a text or a list of token ids."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if all(isinstance(v, int) for v in value):
            return [[int(v) for v in value]]  # type: ignore[arg-type]
        return list(value)  # type: ignore[arg-type]


class LoadLoraAdapterRequest(_Lenient):
    """vLLM's ``POST /v1/load_lora_adapter`` (``load_inplace`` replaces a loaded name)."""

    lora_name: str
    lora_path: str
    load_inplace: bool = False


class UnloadLoraAdapterRequest(_Lenient):
    """vLLM's ``POST /v1/unload_lora_adapter`` (``lora_int_id`` is accepted, as in vLLM
    unused: the name decides)."""

    lora_name: str
    lora_int_id: int | None = None


# ----------------------------------------------------------------- responses


def new_id(prefix: str) -> str:
    """An id like OpenAI's: ``chatcmpl-…`` or ``cmpl-…``."""
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _envelope(obj: str, rid: str, created: int, model: str) -> dict[str, Any]:
    return {"id": rid, "object": obj, "created": created, "model": model}


def chat_completion(
    rid: str, created: int, model: str, text: str, finish_reason: str, use: dict[str, int]
) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": finish_reason,
    }
    return {**_envelope("chat.completion", rid, created, model), "choices": [choice], "usage": use}


def chat_chunk(
    rid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    chunk = {**_envelope("chat.completion.chunk", rid, created, model), "choices": [choice]}
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def text_completion(
    rid: str, created: int, model: str, text: str, finish_reason: str, use: dict[str, int]
) -> dict[str, Any]:
    """A whole ``text_completion`` object."""
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
    return {**_envelope("text_completion", rid, created, model), "choices": [choice], "usage": use}


def completion_chunk(
    rid: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None = None,
    *,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """One streamed ``text_completion`` chunk with a single choice."""
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
    chunk = {**_envelope("text_completion", rid, created, model), "choices": [choice]}
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def usage_chunk(
    obj: str, rid: str, created: int, model: str, use: dict[str, int]
) -> dict[str, Any]:
    """The last chunk when ``stream_options.include_usage`` is set: no choices, usage."""
    return {**_envelope(obj, rid, created, model), "choices": [], "usage": use}


def model_list(name: str, created: int, adapters: Sequence[ModelCard] = ()) -> dict[str, Any]:
    """``GET /v1/models``: the served model, then each adapter with vLLM's ``root`` (its
    path) and ``parent`` (the base model)."""
    entry = {"id": name, "object": "model", "created": created, "owned_by": "appliance"}
    cards = [
        {
            "id": a.name,
            "object": "model",
            "created": a.created,
            "owned_by": "appliance",
            "root": a.path,
            "parent": name,
        }
        for a in adapters
    ]
    return {"object": "list", "data": [entry, *cards]}


def embedding_list(
    model: str, vectors: list[list[float]], encoding_format: str, prompt_tokens: int
) -> dict[str, Any]:
    """``POST /v1/embeddings``: floats, or base64 of little-endian float32 as OpenAI sends."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _base64(v) if encoding_format == "base64" else v,
        }
        for i, v in enumerate(vectors)
    ]
    use = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": use}


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
