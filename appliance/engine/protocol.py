"""The OpenAI request subset the engine accepts, and the response shapes it returns.

Requests are pydantic models with vLLM's parameters and checks; unknown fields are
accepted and ignored, but a known one this engine does not implement is refused (400)
when set rather than silently ignored. Responses are plain dicts shaped as vLLM's
OpenAI server shapes them (``choices`` per ``n``, logprobs objects, ``stop_reason``,
``tool_calls``), so any OpenAI SDK parses them.

Structured outputs (``response_format``, vLLM's ``guided_*`` and ``structured_outputs``) and
``tools`` with their ``tool_choice`` become the ``Guide`` of ``SamplingParams`` (enforced by
``structured``); at most one of them may shape an answer, else a 400.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.engine.structured import (
    JSON_OBJECT_SCHEMA,
    Guide,
    choice_guide,
    grammar_guide,
    json_guide,
    tool_call_guide,
)
from appliance.errors import InvalidRequest

TokenText = Callable[[int], str]  # a token id as logprobs show it
MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
MAX_CHOICES = 128  # n and best_of (the gateway's bound too)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Content part types of multimodal models; this engine serves text-only models.
NON_TEXT_PARTS = frozenset(
    {"image_url", "input_image", "image", "image_embeds", "input_audio", "audio_url",
     "video_url", "file", "input_file"}
)  # fmt: skip


@dataclass(frozen=True)
class SamplingParams:
    """What a request may set, with vLLM's meaning; ``temperature`` 0 means greedy.

    ``max_tokens`` None means ``DEFAULT_MAX_TOKENS`` or what the context has room for.
    ``top_k`` -1 or 0 is off. ``min_tokens``: EOS and ``stop_token_ids`` cannot be drawn,
    and stop strings are not looked for, before that many tokens. ``presence_penalty``
    and ``frequency_penalty`` count the generated tokens only; ``repetition_penalty`` is
    HF's (prompt and generated tokens). ``logit_bias`` maps token ids to biases already
    clamped to [-100, 100]. ``logprobs`` None: none; k: each token's logprob and the k
    most likely alternatives'. ``guide``: the grammar every token must keep to (None: free).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    max_tokens: int | None = None
    min_tokens: int = 0
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    logprobs: int | None = None
    guide: Guide | None = None

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", tuple(s for s in stop if s))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))


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


def _harmless(value: Any) -> bool:
    return value is None or value is False or value == [] or value == {} or value == ""


# Fields vLLM (or OpenAI) accepts that change the answer and that this engine does not
# implement: a request setting one is refused (400) rather than answered as if it had
# not. Each maps to its values that change nothing.
_UNSUPPORTED_COMMON: dict[str, Callable[[Any], bool]] = {
    # vLLM 0.8.5's "structural_tag" response format; text, json_object and json_schema are done
    "response_format": lambda v: not isinstance(v, dict) or v.get("type") != "structural_tag",
    "use_beam_search": _harmless,
    "length_penalty": lambda v: v is None or v == 1,
    "structural_tag": _harmless,
    "guided_whitespace_pattern": _harmless,  # an outlines option; xgrammar has none
    # one backend here, vLLM's default: xgrammar (with or without its options)
    "guided_decoding_backend": lambda v: (
        _harmless(v) or v == "auto" or str(v).split(":")[0] == "xgrammar"
    ),
    "logits_processors": _harmless,
    "allowed_token_ids": lambda v: v is None,
    "bad_words": _harmless,
    "prompt_logprobs": lambda v: v is None,
    "skip_special_tokens": lambda v: v is None or v is True,
    "truncate_prompt_tokens": lambda v: v is None,
}
_UNSUPPORTED_CHAT: dict[str, Callable[[Any], bool]] = {
    **_UNSUPPORTED_COMMON,
    "functions": _harmless,
    "function_call": lambda v: v is None or v == "none",
    "echo": _harmless,
    "continue_final_message": _harmless,
    "chat_template": _harmless,
    "documents": _harmless,
    "audio": _harmless,
    "modalities": lambda v: _harmless(v) or v == ["text"],
    "prediction": _harmless,
}
_UNSUPPORTED_COMPLETION: dict[str, Callable[[Any], bool]] = {
    **_UNSUPPORTED_COMMON,
    "suffix": lambda v: v is None,
}


def _refuse_unsupported(data: Any, fields: Mapping[str, Callable[[Any], bool]]) -> None:
    if not isinstance(data, dict):
        return
    for name, harmless in fields.items():
        if name in data and not harmless(data[name]):
            raise InvalidRequest(
                f"'{name}' is not supported by the built-in engine yet.", param=name
            )


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    """One message; ``developer`` is the system role of newer OpenAI models."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The content as one string: text parts joined by newlines, as vLLM joins them."""
        if isinstance(self.content, list):
            return "\n".join(part.text or "" for part in self.content)
        return self.content or ""

    def for_template(self, where: str = "messages") -> dict[str, Any]:
        """The message as a chat template expects it (``developer`` as ``system``; the
        ``arguments`` of its tool calls as objects, as vLLM gives them to templates)."""
        out: dict[str, Any] = {
            "role": "system" if self.role == "developer" else self.role,
            "content": self.text(),
        }
        for key in ("name", "tool_call_id"):
            if (value := getattr(self, key)) is not None:
                out[key] = value
        if self.tool_calls is not None:
            out["tool_calls"] = [
                _call_for_template(call, f"{where}.tool_calls[{i}]")
                for i, call in enumerate(self.tool_calls)
            ]
        return out


def _call_for_template(call: dict[str, Any], where: str) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(
            f"Missing required parameter: '{where}.function.name'.", param=f"{where}.function"
        )
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise InvalidRequest(
                f"Invalid value for '{where}.function.arguments': not valid JSON ({exc}).",
                param=f"{where}.function.arguments",
            ) from exc
    return {**call, "function": {**function, "arguments": arguments}}


def _check_text_only(messages: Sequence[ChatMessage]) -> None:
    """400 for a content part that is not text, named by its place and type."""
    for i, message in enumerate(messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            where = f"messages[{i}].content[{j}]"
            if part.type in NON_TEXT_PARTS:
                raise InvalidRequest(
                    f"This model accepts text only: {where} is a content part of type "
                    f"'{part.type}'.",
                    param=where,
                )
            if part.type != "text":
                raise InvalidRequest(
                    f"Unknown content part type '{part.type}' in {where}.", param=where
                )
            if part.text is None:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.text'.", param=f"{where}.text"
                )


class StreamOptions(_Lenient):
    include_usage: bool | None = False


class JsonSchemaSpec(_Lenient):
    """``response_format.json_schema``: OpenAI's ``name``, ``description``, ``schema`` and
    ``strict`` (a schema is always enforced strictly, as vLLM enforces it)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    description: str | None = None
    json_schema: dict[str, Any] | bool | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise InvalidRequest(
                "Missing required parameter: 'response_format.json_schema'.",
                param="response_format.json_schema",
            )
        return self


class StructuredOutputs(_Lenient):
    """vLLM's ``structured_outputs`` (its newer name for the ``guided_*`` fields)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    json_schema: dict[str, Any] | str | bool | None = Field(default=None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool | None = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> StructuredOutputs:
        for name in ("whitespace_pattern", "structural_tag"):
            if getattr(self, name):
                raise InvalidRequest(
                    f"'structured_outputs.{name}' is not supported by the built-in engine yet.",
                    param=f"structured_outputs.{name}",
                )
        return self


class FunctionDefinition(_Lenient):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatTool(_Lenient):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: Literal["function"] = "function"
    function: NamedFunction


class _SamplingRequest(_Lenient):
    """What chat and text completions share: OpenAI's sampling parameters and vLLM's."""

    model: str
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=1, ge=1, le=MAX_CHOICES)
    best_of: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    presence_penalty: float | None = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    # vLLM's sampling extras
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    min_tokens: int | None = Field(default=0, ge=0)
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool | None = False
    ignore_eos: bool | None = False
    return_tokens_as_token_ids: bool | None = None
    # structured outputs: OpenAI's response_format, vLLM's guided_* and structured_outputs
    response_format: ResponseFormat | None = None
    guided_json: dict[str, Any] | str | bool | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    guided_decoding_backend: str | None = None
    structured_outputs: StructuredOutputs | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences are supported")
        return stop

    @field_validator("logit_bias")
    @classmethod
    def _token_id_keys(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        for key in bias or {}:
            try:
                int(key)
            except ValueError:
                raise ValueError(
                    "Found token_id in logit_bias that is not an integer or string "
                    "representing an integer"
                ) from None
        return bias

    @model_validator(mode="after")
    def _consistent(self) -> _SamplingRequest:
        n, best_of = self.choices, self.candidates
        if best_of < n:
            raise InvalidRequest(
                f"best_of must be greater than or equal to n, got n={n} and best_of={best_of}.",
                param="best_of",
            )
        if best_of > n and self.stream:
            raise InvalidRequest(
                f"best_of ({best_of}) greater than n ({n}) cannot be streamed: the best "
                "answers are known only at the end. Set 'stream' to false.",
                param="best_of",
            )
        if best_of > 1 and self.temperature == 0:
            raise InvalidRequest(
                f"best_of must be 1 when using greedy sampling, got {best_of}.",
                param="best_of",
            )
        max_tokens, min_tokens = self._max_tokens(), self.min_tokens or 0
        if max_tokens is not None and min_tokens > max_tokens:
            raise InvalidRequest(
                f"min_tokens must be less than or equal to max_tokens={max_tokens}, got "
                f"{min_tokens}.",
                param="min_tokens",
            )
        return self

    @property
    def choices(self) -> int:
        """``n``: the choices returned per prompt."""
        return self.n or 1

    @property
    def candidates(self) -> int:
        """``best_of``: the answers generated per prompt (the ``n`` best are returned)."""
        return self.best_of or self.choices

    def _max_tokens(self) -> int | None:
        return self.max_tokens

    def _logprobs(self) -> int | None:
        return None

    def _structured(self) -> list[Guide]:
        """The structured output each field asks for (more than one is refused)."""
        guides: list[Guide] = []
        so = self.structured_outputs
        # vLLM's xgrammar option, per request (it was a server option in vLLM 0.8.5)
        spaces = "disable-any-whitespace" not in (self.guided_decoding_backend or "")
        spaces = spaces and not (so and so.disable_any_whitespace)
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_object":
            guides.append(json_guide(JSON_OBJECT_SCHEMA, "response_format", any_whitespace=spaces))
        elif fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
            given = fmt.json_schema.json_schema
            schema = JSON_OBJECT_SCHEMA if given is None else given
            guides.append(json_guide(schema, "response_format", any_whitespace=spaces))
        if self.guided_json is not None:
            guides.append(json_guide(self.guided_json, "guided_json", any_whitespace=spaces))
        if self.guided_regex is not None:
            guides.append(Guide("regex", self.guided_regex, "guided_regex"))
        if self.guided_choice:
            guides.append(choice_guide(self.guided_choice, "guided_choice"))
        if self.guided_grammar:
            guides.append(grammar_guide(self.guided_grammar, "guided_grammar"))
        if so is not None:
            where = "structured_outputs"
            if so.json_schema is not None:
                guides.append(json_guide(so.json_schema, f"{where}.json", any_whitespace=spaces))
            if so.json_object:
                guides.append(
                    json_guide(JSON_OBJECT_SCHEMA, f"{where}.json_object", any_whitespace=spaces)
                )
            if so.regex is not None:
                guides.append(Guide("regex", so.regex, f"{where}.regex"))
            if so.choice:
                guides.append(choice_guide(so.choice, f"{where}.choice"))
            if so.grammar:
                guides.append(grammar_guide(so.grammar, f"{where}.grammar"))
        return guides

    def guide(self) -> Guide | None:
        """The one structured output of this request, if any."""
        guides = self._structured()
        if len(guides) > 1:
            names = ", ".join(f"'{g.param}'" for g in guides)
            raise InvalidRequest(
                f"You can only use one kind of structured output (guided decoding); this "
                f"request sets {names}.",
                param=guides[1].param,
            )
        return guides[0] if guides else None

    def sampling(self) -> SamplingParams:
        """The engine's parameters for this request (defaults filled in)."""
        stop = self.stop or ()
        bias = {int(k): min(100.0, max(-100.0, v)) for k, v in (self.logit_bias or {}).items()}
        return SamplingParams(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=-1 if self.top_k is None else self.top_k,
            min_p=self.min_p or 0.0,
            max_tokens=self._max_tokens(),
            min_tokens=self.min_tokens or 0,
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            stop_token_ids=tuple(self.stop_token_ids or ()),
            include_stop_str_in_output=bool(self.include_stop_str_in_output),
            ignore_eos=bool(self.ignore_eos),
            seed=self.seed,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            repetition_penalty=1.0 if self.repetition_penalty is None else self.repetition_penalty,
            logit_bias=bias,
            logprobs=self._logprobs(),
            guide=self.guide(),
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def token_text(self, decoded: TokenText) -> TokenText:
        """How logprobs name a token: as ``decoded`` does, or ``token_id:N`` with vLLM's
        ``return_tokens_as_token_ids``."""
        return _token_id_text if self.return_tokens_as_token_ids else decoded


def _token_id_text(token_id: int) -> str:
    return f"token_id:{token_id}"


def _check_logprobs(count: int | None, name: str) -> None:
    if count is not None and count > MAX_LOGPROBS:
        raise InvalidRequest(
            f"Requested sample logprobs of {count}, which is greater than max allowed: "
            f"{MAX_LOGPROBS}.",
            param=name,
        )


class ChatCompletionRequest(_SamplingRequest):
    """A chat request; ``tools`` are rendered by the chat template and, unless
    ``tool_choice`` is "none", shape and parse the answer (see ``structured`` and ``tools``):
    "auto" (the default with tools) lets the model call or not, "required" makes it call,
    a named choice makes it call that function once."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0)
    add_generation_prompt: bool | None = True
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = True

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        _refuse_unsupported(data, _UNSUPPORTED_CHAT)
        return data

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_shape(cls, choice: Any) -> Any:
        """vLLM's messages for a ``tool_choice`` of the wrong shape."""
        if choice is None or choice in ("none", "auto", "required"):
            return choice
        if isinstance(choice, dict):
            function = choice.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise InvalidRequest(
                    "Expected field `function` with a `name` in `tool_choice`. Correct usage: "
                    '`{"type": "function", "function": {"name": "my_function"}}`',
                    param="tool_choice",
                )
            return choice
        raise InvalidRequest(
            f'Invalid value for `tool_choice`: {choice!r}! Only named tools, "none", '
            '"auto" or "required" are supported.',
            param="tool_choice",
        )

    @model_validator(mode="after")
    def _chat_rules(self) -> ChatCompletionRequest:
        _check_text_only(self.messages)
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequest(
                "when using `top_logprobs`, `logprobs` must be set to true.",
                param="top_logprobs",
            )
        _check_logprobs(self.top_logprobs, "top_logprobs")
        self._check_tools()
        return self

    def _check_tools(self) -> None:
        """vLLM's checks of ``tools`` and ``tool_choice``."""
        choice = self.tool_choice
        if choice is None or choice == "none":
            return
        if self.tools is None:
            raise InvalidRequest("When using `tool_choice`, `tools` must be set.", param="tools")
        names = [tool.function.name for tool in self.tools]
        if choice == "required" and not names:
            raise InvalidRequest(
                "`tool_choice` 'required' needs at least one tool in `tools`.", param="tools"
            )
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise InvalidRequest(
                "The tool specified in `tool_choice` does not match any of the specified `tools`",
                param="tool_choice",
            )

    @property
    def tool_mode(self) -> Literal["auto", "required", "named"] | None:
        """How the answer uses the tools: None when it cannot call any (no tools, or
        ``tool_choice`` "none"); "auto" is the default with tools, as in vLLM and OpenAI."""
        if not self.tools or self.tool_choice == "none":
            return None
        if isinstance(self.tool_choice, NamedToolChoice):
            return "named"
        return "required" if self.tool_choice == "required" else "auto"

    @property
    def parallel(self) -> bool:
        return self.parallel_tool_calls is not False

    def tool_dicts(self) -> list[dict[str, Any]] | None:
        """The tools as the chat template gets them (also with ``tool_choice`` "none", as
        vLLM renders them)."""
        if not self.tools:
            return None
        return [tool.model_dump(exclude_none=True) for tool in self.tools]

    def guide(self) -> Guide | None:
        """The structured output, or the tool calls' grammar (a request may not have both,
        except with "auto", where its own structured output shapes the text and calls are
        read from it, as in vLLM)."""
        structured = super().guide()
        mode = self.tool_mode
        if mode is None or (mode == "auto" and structured is not None):
            return structured
        if structured is not None:
            raise InvalidRequest(
                "You can only either use guided decoding or tools, not both.",
                param=structured.param,
            )
        functions = [tool.function.model_dump(exclude_none=True) for tool in self.tools or []]
        if isinstance(self.tool_choice, NamedToolChoice):
            name = self.tool_choice.function.name
            functions = [f for f in functions if f["name"] == name][:1]
        return tool_call_guide(functions, mode, parallel=self.parallel)

    def _max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def _logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def chat_messages(self) -> list[dict[str, Any]]:
        """Messages as the chat template expects them."""
        return [m.for_template(f"messages[{i}]") for i, m in enumerate(self.messages)]

    def template_options(self) -> dict[str, Any]:
        """vLLM's ``add_generation_prompt`` and ``chat_template_kwargs``, and the tools, for
        the template."""
        return {
            "add_generation_prompt": self.add_generation_prompt is not False,
            "template_kwargs": self.chat_template_kwargs or {},
            "tools": self.tool_dicts(),
        }


def _token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompt_shaped(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return True
    if not isinstance(prompt, list) or not prompt:
        return False
    return (
        all(isinstance(x, str) for x in prompt)
        or all(_token_id(x) for x in prompt)
        or all(isinstance(x, list) and x and all(_token_id(y) for y in x) for x in prompt)
    )


class CompletionRequest(_SamplingRequest):
    """``prompt``: a text, texts, token ids or lists of token ids (one answer set each)."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = False
    logprobs: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        _refuse_unsupported(data, _UNSUPPORTED_COMPLETION)
        return data

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, prompt: Any) -> Any:
        if not _prompt_shaped(prompt):
            raise ValueError(
                "the prompt must be a text, a list of texts, a list of token ids or a list "
                "of lists of token ids, and no list may be empty"
            )
        return prompt

    @model_validator(mode="after")
    def _completion_rules(self) -> CompletionRequest:
        _check_logprobs(self.logprobs, "logprobs")
        return self

    def _logprobs(self) -> int | None:
        return self.logprobs

    def prompts(self) -> list[str | list[int]]:
        """The prompts, one answer set each: a text or a list of token ids."""
        value = self.prompt
        if isinstance(value, str):
            return [value]
        if all(isinstance(v, int) for v in value):
            return [[int(v) for v in value]]  # type: ignore[arg-type]
        return list(value)  # type: ignore[arg-type]


class TokenizeRequest(_Lenient):
    """vLLM's ``POST /tokenize``: chat ``messages`` (the template applied) or a ``prompt``."""

    model: str
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: str | None = None
    tools: list[ChatTool] | None = None  # rendered with the messages, as a chat request's

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either messages or prompt")
        _check_text_only(self.messages or [])
        return self

    def chat_messages(self) -> list[dict[str, Any]]:
        return [m.for_template(f"messages[{i}]") for i, m in enumerate(self.messages or [])]

    def tool_dicts(self) -> list[dict[str, Any]] | None:
        return [tool.model_dump(exclude_none=True) for tool in self.tools] if self.tools else None


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


@dataclass(frozen=True)
class TokenLogprob:
    """One token's logprob and its most likely alternatives, most likely first (the
    model's own distribution, before penalties, biases and temperature, as vLLM V1
    reports them). A prompt's first token has none: ``logprob`` None."""

    token_id: int
    logprob: float | None
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """Text that a generation releases, with the logprobs of the tokens it completes."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


def _lp(value: float) -> float:
    return max(value, -9999.0)  # -inf as the JSON-safe number OpenAI uses


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8", errors="replace"))


def chat_logprobs(
    entries: Sequence[TokenLogprob], token_text: TokenText, top_n: int
) -> dict[str, Any]:
    """A chat choice's ``logprobs``: ``content`` lists, per token, ``token``, ``logprob``,
    ``bytes`` and the ``top_n`` most likely alternatives (``top_logprobs``)."""
    content = []
    for entry in entries:
        token = token_text(entry.token_id)
        top = [
            {"token": (alt := token_text(tid)), "logprob": _lp(lp), "bytes": _bytes(alt)}
            for tid, lp in entry.top[:top_n]
        ]
        logprob = -9999.0 if entry.logprob is None else _lp(entry.logprob)
        content.append(
            {"token": token, "logprob": logprob, "bytes": _bytes(token), "top_logprobs": top}
        )
    return {"content": content}


def completion_logprobs(
    entries: Sequence[TokenLogprob], token_text: TokenText, top_n: int, offset: int = 0
) -> tuple[dict[str, Any], int]:
    """A text completion choice's ``logprobs`` (OpenAI's legacy shape, as vLLM builds it:
    ``top_logprobs`` holds the ``top_n`` most likely tokens and always the chosen one, so
    up to ``top_n`` + 1; ``text_offset`` counts from ``offset``), and the next offset."""
    text_offset: list[int] = []
    token_logprobs: list[float | None] = []
    tokens: list[str] = []
    top_logprobs: list[dict[str, float] | None] = []
    for entry in entries:
        token = token_text(entry.token_id)
        tokens.append(token)
        text_offset.append(offset)
        offset += len(token)
        if entry.logprob is None:
            token_logprobs.append(None)
            top_logprobs.append(None)
            continue
        token_logprobs.append(_lp(entry.logprob))
        top = {token_text(tid): _lp(lp) for tid, lp in entry.top[:top_n]}
        top.setdefault(token, _lp(entry.logprob))
        top_logprobs.append(top)
    shape = {
        "text_offset": text_offset,
        "token_logprobs": token_logprobs,
        "tokens": tokens,
        "top_logprobs": top_logprobs,
    }
    return shape, offset


def chat_choice(
    index: int,
    text: str | None,
    finish_reason: str | None,
    stop_reason: str | int | None = None,
    logprobs: dict[str, Any] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One choice of a whole ``chat.completion`` (``tool_calls``: with tools, as vLLM lists
    them, ``[]`` when none was made)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "index": index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
    }


def chat_completion(
    rid: str, created: int, model: str, choices: list[dict[str, Any]], use: dict[str, int]
) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    return {**_envelope("chat.completion", rid, created, model), "choices": choices, "usage": use}


def chat_chunk(
    rid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    index: int = 0,
    logprobs: dict[str, Any] | None = None,
    stop_reason: str | int | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``: a delta of choice ``index``."""
    choice = {
        "index": index,
        "delta": delta,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
    }
    chunk = {**_envelope("chat.completion.chunk", rid, created, model), "choices": [choice]}
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def completion_choice(
    index: int,
    text: str,
    finish_reason: str | None,
    stop_reason: str | int | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One choice of a ``text_completion`` (whole, or a streamed delta)."""
    return {
        "index": index,
        "text": text,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
    }


def text_completion(
    rid: str, created: int, model: str, choices: list[dict[str, Any]], use: dict[str, int]
) -> dict[str, Any]:
    """A whole ``text_completion`` object."""
    return {**_envelope("text_completion", rid, created, model), "choices": choices, "usage": use}


def completion_chunk(
    rid: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None = None,
    *,
    index: int = 0,
    logprobs: dict[str, Any] | None = None,
    stop_reason: str | int | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """One streamed ``text_completion`` chunk: a delta of choice ``index``."""
    choice = completion_choice(index, text, finish_reason, stop_reason, logprobs)
    chunk = {**_envelope("text_completion", rid, created, model), "choices": [choice]}
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def usage_chunk(
    obj: str, rid: str, created: int, model: str, use: dict[str, int]
) -> dict[str, Any]:
    """The last chunk when ``stream_options.include_usage`` is set: no choices, usage."""
    return {**_envelope(obj, rid, created, model), "choices": [], "usage": use}


def model_list(
    name: str, created: int, *, root: str, max_model_len: int, adapters: Sequence[ModelCard] = ()
) -> dict[str, Any]:
    """``GET /v1/models`` as vLLM answers it: the served model with its ``max_model_len``
    (the context length), its ``root`` (what it was loaded from) and no ``parent``, then
    each adapter with its ``root`` (its path) and ``parent`` (the base model)."""
    entry = {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "appliance",
        "root": root,
        "parent": None,
        "max_model_len": max_model_len,
    }
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
