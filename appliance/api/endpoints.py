"""The forwarding endpoints: what differs between them is data, the rest is ``forward``.

Each entry of ``ROUTES`` is one URL rule of the API: its blueprint (``v1`` for ``/v1/...``,
``vllm`` for what vLLM serves at its root), its rule, its view's name (the endpoint name
the OpenAPI document and the access checks know it by), the ``Endpoint`` it forwards to
and whether its body is a multipart form (audio) rather than JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from appliance.api.pipeline import Texts, choice_texts, rerank_texts, transcript_texts
from appliance.api.protocol import (
    AudioRequest,
    ChatCompletionRequest,
    ClassificationRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    ModelRequest,
    PoolingRequest,
    RerankRequest,
    ResponsesRequest,
    ScoreRequest,
    TokenizeRequest,
)
from appliance.api.responses import response_texts
from appliance.audit.events import AuditAction
from appliance.auth.rbac import Permission


@dataclass(frozen=True)
class Endpoint:
    """What differs between the forwarding endpoints: the rest is ``forward``."""

    path: str  # on the upstream
    request: type[ModelRequest]
    action: AuditAction
    details: dict[str, Any] = field(default_factory=dict)
    permission: Permission = Permission.API_MODEL_INVOKE
    texts: Texts | None = choice_texts  # where the answer's texts are (None: it has none)
    system: str | None = None  # where an alias's system prompt goes (content.yaml aliases)

    def at(self, path: str) -> Endpoint:
        """The same endpoint under another of vLLM's paths (sent upstream as called)."""
        return dataclasses.replace(self, path=path)


CHAT = Endpoint(
    "/v1/chat/completions",
    ChatCompletionRequest,
    AuditAction.API_CHAT_COMPLETION,
    system="messages",
)
COMPLETIONS = Endpoint(
    "/v1/completions", CompletionRequest, AuditAction.API_COMPLETION, system="prompt"
)
EMBEDDINGS = Endpoint("/v1/embeddings", EmbeddingRequest, AuditAction.API_EMBEDDINGS, {})
RESPONSES = Endpoint(
    "/v1/responses",
    ResponsesRequest,
    AuditAction.API_RESPONSES,
    permission=Permission.API_RESPONSES_INVOKE,
    texts=response_texts,
    system="instructions",
)
TOKENIZE = Endpoint(
    "/tokenize",
    TokenizeRequest,
    AuditAction.API_TOKENIZE,
    permission=Permission.API_TOKENIZE_INVOKE,
    texts=None,
)
DETOKENIZE = dataclasses.replace(
    TOKENIZE, path="/detokenize", request=DetokenizeRequest, action=AuditAction.API_DETOKENIZE
)
SCORE = Endpoint(
    "/score",
    ScoreRequest,
    AuditAction.API_SCORE,
    permission=Permission.API_SCORE_INVOKE,
    texts=None,
)
RERANK = Endpoint(
    "/rerank",
    RerankRequest,
    AuditAction.API_RERANK,
    permission=Permission.API_RERANK_INVOKE,
    texts=rerank_texts,
)
POOLING = Endpoint(
    "/pooling",
    PoolingRequest,
    AuditAction.API_POOLING,
    permission=Permission.API_POOLING_INVOKE,
    texts=None,
)
CLASSIFY = Endpoint(
    "/classify",
    ClassificationRequest,
    AuditAction.API_CLASSIFY,
    permission=Permission.API_CLASSIFY_INVOKE,
    texts=None,
)
TRANSCRIPTIONS = Endpoint(
    "/v1/audio/transcriptions",
    AudioRequest,
    AuditAction.API_AUDIO_TRANSCRIPTION,
    permission=Permission.API_AUDIO_INVOKE,
    texts=transcript_texts,
)
TRANSLATIONS = dataclasses.replace(
    TRANSCRIPTIONS, path="/v1/audio/translations", action=AuditAction.API_AUDIO_TRANSLATION
)


class Rule(NamedTuple):
    blueprint: str  # "v1" (under /v1) or "vllm" (at the root)
    rule: str  # within the blueprint
    name: str  # the view's name
    endpoint: Endpoint
    multipart: bool = False  # a form with a file (audio), not a JSON object


ROUTES = (
    Rule("v1", "/chat/completions", "chat_completions", CHAT),
    Rule("v1", "/completions", "completions", COMPLETIONS),
    Rule("v1", "/embeddings", "embeddings", EMBEDDINGS),
    Rule("v1", "/responses", "responses", RESPONSES),
    Rule("vllm", "/tokenize", "tokenize", TOKENIZE),
    Rule("vllm", "/detokenize", "detokenize", DETOKENIZE),
    Rule("vllm", "/score", "score", SCORE),
    Rule("v1", "/score", "score_v1", SCORE.at("/v1/score")),
    Rule("vllm", "/rerank", "rerank", RERANK),
    Rule("v1", "/rerank", "rerank_v1", RERANK.at("/v1/rerank")),
    Rule("vllm", "/v2/rerank", "rerank_v2", RERANK.at("/v2/rerank")),
    Rule("vllm", "/pooling", "pooling", POOLING),
    Rule("vllm", "/classify", "classify", CLASSIFY),
    Rule("v1", "/audio/transcriptions", "audio_transcriptions", TRANSCRIPTIONS, multipart=True),
    Rule("v1", "/audio/translations", "audio_translations", TRANSLATIONS, multipart=True),
)
# What vLLM serves at its root rather than under /v1.
ROOT_PATHS = frozenset(r.rule for r in ROUTES if r.blueprint == "vllm")
