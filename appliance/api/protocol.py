"""Pydantic models of the OpenAI protocol, shaped like vLLM's ``entrypoints/openai/protocol.py``.

Requests are validated here and then forwarded as the client sent them. What is checked
is what the gateway itself needs (the ``model`` it routes by, the texts it desensitizes,
the token fields the role caps hold) and types: a field of the wrong type is a 400 naming
it. A range is checked only where vLLM refuses the same value anyway (``n`` below 1,
``top_p`` above 1); anything vLLM accepts passes (``temperature`` above 2, ``top_logprobs``
above 20: vLLM's own ``--max-logprobs`` decides, ``prompt_embeds``, ``allowed_tools``, custom
tools), and unknown fields are kept (``extra="allow"``), so every parameter a vLLM version
accepts reaches it. Response models describe what the gateway returns, for ``/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import InvalidRequest

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
TokenIds = Annotated[list[int], Field(min_length=1)]
Texts = Annotated[list[str], Field(min_length=1)]
TokenIdLists = Annotated[list[TokenIds], Field(min_length=1)]


class _Open(BaseModel):
    """Validated fields, and any other field kept as sent."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ request parts


class StreamOptions(_Open):
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class JsonSchemaFormat(_Open):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema", "structural_tag"]
    json_schema: JsonSchemaFormat | None = None


class FunctionDefinition(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatCompletionTool(_Open):
    """A ``function`` tool (its definition checked), or another kind (``custom``...) as sent."""

    type: str = "function"
    function: FunctionDefinition | None = None


# "none", "auto", "required", or an object: a named function, OpenAI's ``allowed_tools``,
# a ``custom`` tool... (its shape is the upstream's to judge).
ToolChoice = Literal["none", "auto", "required"] | dict[str, Any]


class ContentPart(_Open):
    """``text``, ``image_url``, ``input_audio``, ``video_url``...: the type decides the rest
    (vLLM tells a part without one by its keys)."""

    type: str | None = None
    text: str | None = None


class ToolCallFunction(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCall(_Open):
    id: str | None = None
    type: str = "function"
    function: ToolCallFunction | None = None


class ChatMessage(_Open):
    """A message; vLLM takes any role its chat template knows (a custom one too)."""

    role: str
    content: str | list[ContentPart | str] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


# ------------------------------------------------------------------ requests


class ModelRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    user: str | None = None

    # The fields that cap the tokens of the answer, the preferred first: the role's
    # max_tokens holds them, and the last one is set to the cap when none was sent.
    OUTPUT_TOKENS: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        """What the fields cannot say one by one (one of two required); InvalidRequest."""

    def output_tokens(self) -> int | None:
        for name in self.OUTPUT_TOKENS:
            value = getattr(self, name, None)
            if value is not None:
                return int(value)
        return None

    @property
    def streams(self) -> bool:
        return False

    @property
    def wants_usage_in_stream(self) -> bool:
        return False


class _SamplingRequest(ModelRequest):
    """What chat and text completions share: OpenAI's sampling parameters and vLLM's."""

    OUTPUT_TOKENS: ClassVar[tuple[str, ...]] = ("max_tokens",)

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    presence_penalty: Penalty | None = 0.0
    frequency_penalty: Penalty | None = 0.0
    logit_bias: dict[str, float] | None = None  # vLLM clamps each to [-100, 100]
    response_format: ResponseFormat | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # vLLM's sampling extras
    use_beam_search: bool = False
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)
    prompt_logprobs: int | None = Field(default=None, ge=-1)
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    # vLLM's guided decoding
    guided_json: str | dict[str, Any] | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    guided_decoding_backend: str | None = None
    guided_whitespace_pattern: str | None = None
    priority: int = 0
    request_id: str | None = None
    return_tokens_as_token_ids: bool | None = None

    @property
    def streams(self) -> bool:
        return bool(self.stream)

    @property
    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingRequest):
    """``POST /v1/chat/completions``."""

    OUTPUT_TOKENS: ClassVar[tuple[str, ...]] = ("max_completion_tokens", "max_tokens")

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0)
    tools: list[ChatCompletionTool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # vLLM's chat extras
    echo: bool = False
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    documents: list[dict[str, str]] | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None


def _one_of(request: BaseModel, first: str, second: str) -> None:
    if getattr(request, first) is None and getattr(request, second) is None:
        raise InvalidRequest(f"Missing required parameter: '{first}' (or '{second}').", param=first)


def _either(first: str, second: str) -> ConfigDict:
    """The model's config, saying in its JSON schema that one of two fields is required
    (and not null: a null one counts as absent)."""

    def extra(schema: dict[str, Any]) -> None:
        schema["anyOf"] = [{"required": [first]}, {"required": [second]}]
        for name in (first, second):
            field = schema.get("properties", {}).get(name, {})
            if "anyOf" in field:
                field["anyOf"] = [t for t in field["anyOf"] if t.get("type") != "null"]
            field.pop("default", None)

    return ConfigDict(extra="allow", populate_by_name=True, json_schema_extra=extra)


class CompletionRequest(_SamplingRequest):
    """``POST /v1/completions``: a ``prompt``, or vLLM's ``prompt_embeds`` (base64 tensors)."""

    model_config = _either("prompt", "prompt_embeds")

    prompt: str | Texts | TokenIds | TokenIdLists | None = None
    prompt_embeds: str | list[str] | None = None
    best_of: int | None = Field(default=None, ge=1)
    echo: bool | None = False
    logprobs: int | None = Field(default=None, ge=0)
    suffix: str | None = None
    add_special_tokens: bool = True

    def check(self) -> None:
        _one_of(self, "prompt", "prompt_embeds")


class _PoolingInput(ModelRequest):
    """An ``input`` (texts or token ids), or chat ``messages`` (vLLM's chat-style pooling)."""

    model_config = _either("input", "messages")

    input: str | Texts | TokenIds | TokenIdLists | None = None
    messages: list[ChatMessage] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)
    add_special_tokens: bool | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None

    def check(self) -> None:
        _one_of(self, "input", "messages")


class EmbeddingRequest(_PoolingInput):
    """``POST /v1/embeddings``."""


class PoolingRequest(_PoolingInput):
    """``POST /pooling``: the model's pooled hidden states, as vLLM returns them."""


class ResponsesRequest(ModelRequest):
    """``POST /v1/responses``: OpenAI's Responses API, as vLLM serves it."""

    OUTPUT_TOKENS: ClassVar[tuple[str, ...]] = ("max_output_tokens",)

    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    stream: bool | None = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    background: bool | None = None
    metadata: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    truncation: str | None = None
    include: list[str] | None = None

    @property
    def streams(self) -> bool:
        return bool(self.stream)


class TokenizeRequest(ModelRequest):
    """``POST /tokenize``: a ``prompt``, or chat ``messages`` with the template applied."""

    model_config = _either("prompt", "messages")

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool | None = None
    continue_final_message: bool | None = None
    return_token_strs: bool | None = None
    tools: list[ChatCompletionTool] | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None

    def check(self) -> None:
        _one_of(self, "prompt", "messages")


class DetokenizeRequest(ModelRequest):
    """``POST /detokenize``."""

    tokens: list[int]


# A text, several, or vLLM's multimodal form (``{"content": [parts]}``).
ScoreTexts = str | list[str] | dict[str, Any]


class ScoreRequest(ModelRequest):
    """``POST /score`` (``/v1/score``): how well each ``text_2`` goes with ``text_1``."""

    text_1: ScoreTexts
    text_2: ScoreTexts
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)


class RerankRequest(ModelRequest):
    """``POST /rerank`` (``/v1/rerank``, ``/v2/rerank``): Jina's and Cohere's API."""

    query: str | dict[str, Any]
    documents: list[str | dict[str, Any]] | dict[str, Any]
    top_n: int | None = None
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)


class ClassificationRequest(ModelRequest):
    """``POST /classify``."""

    input: str | Texts | TokenIds | TokenIdLists
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)


class AudioRequest(ModelRequest):
    """``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``: a multipart form.

    The audio goes to the model as sent (it cannot be desensitized, so it has a permission
    of its own); the ``prompt`` is text and is desensitized. Every other field is passed on.
    """

    file: bytes = Field(
        description="the audio file (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm)"
    )
    prompt: str | None = None
    language: str | None = None
    response_format: str | None = None
    temperature: float | None = None
    stream: bool | None = None

    @property
    def streams(self) -> bool:
        return bool(self.stream)

    @property
    def wants_usage_in_stream(self) -> bool:
        return True


class FeedbackRequest(_Closed):
    """``POST /v1/feedback``: a caller's verdict on one of its own earlier answers, named
    by the ``X-Request-Id`` every response carries. Canaries are judged on it."""

    request_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    rating: Literal["good", "bad"]


class ModerationRequest(_Open):
    """``POST /v1/moderations``: OpenAI's request; ``input`` a text, a list of texts, or
    a list of content parts (only ``text`` parts: the policy reads text)."""

    input: str | list[str] | list[dict[str, Any]]
    model: str | None = Field(default=None, max_length=256)

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        out: list[str] = []
        items: list[Any] = list(self.input)
        for position, item in enumerate(items):
            if isinstance(item, str):
                out.append(item)
            elif item.get("type") == "text" and isinstance(item.get("text"), str):
                out.append(item["text"])
            else:
                kind = item.get("type")
                raise InvalidRequest(
                    f"input[{position}]: only text parts can be moderated here, not {kind!r}.",
                    param=f"input[{position}]",
                )
        if not out:
            raise InvalidRequest("'input' must hold at least one text.", param="input")
        return out


# ------------------------------------------------------------------ responses


class ModerationResult(_Open):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(_Open):
    id: str
    model: str
    results: list[ModerationResult]


class ErrorInfo(_Closed):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(_Closed):
    """Every error the API returns: OpenAI's shape, which every OpenAI SDK parses."""

    error: ErrorInfo


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int | None = 0
    total_tokens: int


class ModelCard(_Open):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AssistantMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(_Open):
    index: int
    message: AssistantMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChatCompletionResponse(_Open):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class DeltaMessage(_Open):
    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChunkChoice(_Open):
    index: int
    delta: DeltaMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One server-sent event of a chat stream (``data: {...}``; the last is ``[DONE]``)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(_Open):
    index: int
    text: str
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class CompletionResponse(_Open):
    """A text completion; streamed, each event has this shape with a text delta."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(_Open):
    index: int
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingResponse(_Open):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ResponsesUsage(_Open):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ResponsesResponse(_Open):
    """A response of the Responses API; ``output`` holds its messages, reasoning and tool calls."""

    id: str
    object: Literal["response"] = "response"
    created_at: int | float
    model: str
    output: list[dict[str, Any]]
    status: str | None = None
    usage: ResponsesUsage | None = None


class ResponsesStreamEvent(_Open):
    """One server-sent event of a streamed response: ``event: <type>`` then ``data: {...}``
    (``response.output_text.delta``, ``response.completed``...); there is no ``[DONE]``."""

    type: str
    sequence_number: int | None = None


class TokenizeResponse(_Open):
    count: int
    max_model_len: int | None = None
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(_Open):
    prompt: str


class ScoreData(_Open):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreResponse(_Open):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: Usage | None = None


class RerankDocument(_Open):
    text: str | None = None


class RerankResult(_Open):
    index: int
    document: RerankDocument | None = None
    relevance_score: float


class RerankUsage(_Open):
    total_tokens: int


class RerankResponse(_Open):
    id: str
    model: str
    usage: RerankUsage | None = None
    results: list[RerankResult]


class PoolingData(_Open):
    index: int
    object: Literal["pooling"] = "pooling"
    data: list[list[float]] | list[float] | str


class PoolingResponse(_Open):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[PoolingData]
    usage: Usage | None = None


class ClassificationData(_Open):
    index: int
    label: str | None = None
    probs: list[float]
    num_classes: int


class ClassificationResponse(_Open):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ClassificationData]
    usage: Usage | None = None


class AudioResponse(_Open):
    """``json`` and ``verbose_json`` (with ``segments``); ``text``, ``srt`` and ``vtt`` are
    plain text; a stream is chat-like chunks (``choices[].delta.content``), then ``[DONE]``."""

    text: str


class FeedbackResponse(_Open):
    object: Literal["feedback"] = "feedback"
    request_id: str
    rating: str
