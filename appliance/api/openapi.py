"""``GET /openapi.json``: the API app's OpenAPI 3.1 document, generated from its routes.

Every rule in the app's URL map becomes an operation; what an endpoint accepts and
returns is declared once in ``OPERATIONS`` with the pydantic models of
``appliance/api/protocol.py``, whose JSON schemas are hoisted into
``components/schemas``. An endpoint added without a declaration still appears, marked
``x-undocumented`` (a test fails on it). Each operation that needs a permission names it
(``x-permissions``: any one of them will do), as its view declares it. The document is
built on first use, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from flask import Blueprint, Flask, current_app
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Rule

from appliance import __version__
from appliance.api import protocol as p
from appliance.auth import access
from appliance.auth.access import public

bp = Blueprint("openapi", __name__)
EXTENSION = "appliance.openapi"
REF = "#/components/schemas/{model}"

ERRORS = {
    400: "The request is invalid: the message names the parameter.",
    401: "No API key, or an invalid, expired or revoked one.",
    403: "The key may not use this model (the message names the permission).",
    404: "The model does not exist.",
    409: "The conversation (X-Conversation-Id) is busy, or its sealed state is unreadable.",
    413: "The request body is too large.",
    429: "Too many requests or tokens: retry after the `Retry-After` seconds.",
    503: "No upstream of the model could be reached.",
}
MODEL_CALL_ERRORS = tuple(ERRORS)
REQUEST_ID_HEADER = {
    "name": "X-Request-Id",
    "in": "header",
    "required": False,
    "description": (
        "Your id of this call (1 to 64 of A-Z a-z 0-9 . _ -), kept and sent upstream; any other"
        " value is replaced by one made here. The answer's X-Request-Id is the one used."
    ),
    "schema": {"type": "string"},
}
# OpenAI's, on every /v1 answer to a caller with limits (absent for an unlimited dimension)
RATELIMIT_HEADERS = {
    f"x-ratelimit-{what}-{dimension}": {
        "schema": {"type": "integer" if what != "reset" else "string"},
        "description": description.format(dimension=dimension),
    }
    for dimension in ("requests", "tokens")
    for what, description in (
        ("limit", "the {dimension} allowed (per minute; tokens: per day)"),
        ("remaining", "the {dimension} left now"),
        ("reset", "until the {dimension} limit is back to its initial state, e.g. 1s, 6m0s"),
    )
}
CONVERSATION_HEADER = {
    "name": "X-Conversation-Id",
    "in": "header",
    "required": False,
    "description": (
        "Keep this conversation's pseudonyms (sealed) across requests, so the same personal"
        " data gets the same placeholder in each: 1 to 128 of A-Z a-z 0-9 . _ : -"
    ),
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}
Refs = dict[tuple[Any, str], dict[str, Any]]  # (model, mode) -> {"$ref": ...}


class HealthStatus(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, Any]


class TokenRequest(BaseModel):
    """OAuth 2.0 client credentials; the client authenticates by HTTP Basic or these fields."""

    grant_type: Literal["client_credentials"]
    scope: str | None = None
    client_id: str | None = Field(default=None, description="The API key's id (sk-app-xxxxxxxx)")
    client_secret: str | None = Field(default=None, description="The whole API key")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str


class OAuthError(BaseModel):
    """RFC 6749 §5.2: the token endpoint speaks OAuth, not OpenAI."""

    error: str
    error_description: str | None = None


class OpenApiDocument(BaseModel):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """What one endpoint accepts and returns."""

    summary: str
    response: type[BaseModel]
    request: type[BaseModel] | None = None
    stream_event: type[BaseModel] | None = None  # text/event-stream when `stream` is true
    errors: tuple[int, ...] = (401, 429)
    tag: str = "openai"
    unavailable: type[BaseModel] | None = None  # a 503 that is not an error body
    media: str = "application/json"  # of the request body
    error_body: type[BaseModel] = p.ErrorResponse
    security: list[dict[str, list[str]]] | None = None  # None: the document's (bearer)


OPERATIONS: dict[str, Operation] = {
    "v1.models": Operation("List the models this key may use", p.ModelList),
    "v1.chat_completions": Operation(
        "Create a chat completion",
        p.ChatCompletionResponse,
        p.ChatCompletionRequest,
        p.ChatCompletionChunk,
        MODEL_CALL_ERRORS,
    ),
    "v1.completions": Operation(
        "Create a text completion",
        p.CompletionResponse,
        p.CompletionRequest,
        p.CompletionResponse,
        MODEL_CALL_ERRORS,
    ),
    "v1.embeddings": Operation(
        "Create embeddings", p.EmbeddingResponse, p.EmbeddingRequest, None, MODEL_CALL_ERRORS
    ),
    "v1.responses": Operation(
        "Create a response (the Responses API), whole or streamed",
        p.ResponsesResponse,
        p.ResponsesRequest,
        p.ResponsesStreamEvent,
        MODEL_CALL_ERRORS,
    ),
    "vllm.tokenize": Operation(
        "Tokenize a prompt or chat messages (vLLM's /tokenize)",
        p.TokenizeResponse,
        p.TokenizeRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "vllm.detokenize": Operation(
        "Token ids back to text (vLLM's /detokenize)",
        p.DetokenizeResponse,
        p.DetokenizeRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "vllm.score": Operation(
        "Score text pairs (vLLM's /score)",
        p.ScoreResponse,
        p.ScoreRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "v1.score_v1": Operation(
        "Score text pairs (vLLM's /v1/score)",
        p.ScoreResponse,
        p.ScoreRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "vllm.rerank": Operation(
        "Rerank documents for a query (vLLM's /rerank, Jina's API)",
        p.RerankResponse,
        p.RerankRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "v1.rerank_v1": Operation(
        "Rerank documents for a query (vLLM's /v1/rerank)",
        p.RerankResponse,
        p.RerankRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "vllm.rerank_v2": Operation(
        "Rerank documents for a query (vLLM's /v2/rerank, Cohere's API)",
        p.RerankResponse,
        p.RerankRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "vllm.pooling": Operation(
        "The model's pooled hidden states (vLLM's /pooling)",
        p.PoolingResponse,
        p.PoolingRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "vllm.classify": Operation(
        "Classify texts (vLLM's /classify)",
        p.ClassificationResponse,
        p.ClassificationRequest,
        None,
        MODEL_CALL_ERRORS,
        tag="vllm",
    ),
    "v1.audio_transcriptions": Operation(
        "Transcribe audio (the audio itself is not desensitized: a permission of its own)",
        p.AudioResponse,
        p.AudioRequest,
        None,
        MODEL_CALL_ERRORS,
        media="multipart/form-data",
    ),
    "v1.audio_translations": Operation(
        "Translate audio into English text (not desensitized: a permission of its own)",
        p.AudioResponse,
        p.AudioRequest,
        None,
        MODEL_CALL_ERRORS,
        media="multipart/form-data",
    ),
    "v1.moderations": Operation(
        "Check texts against the content policy (OpenAI's moderation shape; no model)",
        p.ModerationResponse,
        p.ModerationRequest,
        errors=(400, 401, 403, 413),
        tag="appliance",
    ),
    "v1.feedback": Operation(
        "Rate one of this key's earlier answers (judges fine-tune canaries)",
        p.FeedbackResponse,
        p.FeedbackRequest,
        errors=(400, 401, 404),
        tag="appliance",
    ),
    "health.healthz": Operation("Liveness", HealthStatus, errors=(), tag="health"),
    "health.readyz": Operation(
        "Readiness: database and upstreams",
        Readiness,
        errors=(),
        tag="health",
        unavailable=Readiness,
    ),
    "openapi.document": Operation("This document", OpenApiDocument, tag="meta"),
    "oauth.token": Operation(
        "Exchange an API key for a short-lived access token (client credentials)",
        TokenResponse,
        TokenRequest,
        errors=(400, 401),
        tag="oauth",
        media="application/x-www-form-urlencoded",
        error_body=OAuthError,
        security=[{"basic": []}, {}],
    ),
}
MODELS: tuple[type[BaseModel], ...] = (p.ErrorResponse,)

_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def init_app(app: Flask, public_endpoints: Iterable[str] = ()) -> None:
    """Serve the document; ``public_endpoints`` are described as needing no key."""
    app.extensions[EXTENSION] = {"public": frozenset(public_endpoints), "document": None}
    app.register_blueprint(bp)


@bp.get("/openapi.json")
@public
def document() -> dict[str, Any]:
    state = current_app.extensions[EXTENSION]
    if state["document"] is None:
        state["document"] = build_document(current_app, state["public"])
    doc: dict[str, Any] = state["document"]
    return doc


def build_document(app: Flask, public_endpoints: Iterable[str] = ()) -> dict[str, Any]:
    public = frozenset(public_endpoints)
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    operations = [OPERATIONS.get(r.endpoint) for r in rules]
    schemas, refs = _schemas([op for op in operations if op is not None])
    paths: dict[str, dict[str, Any]] = {}
    for rule, op in sorted(zip(rules, operations, strict=True), key=lambda x: x[0].rule):
        path, parameters = _path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            is_public = rule.endpoint in public
            entry = _operation(op, refs, public=is_public) if op else _undocumented(rule)
            entry["operationId"] = f"{rule.endpoint}.{method.lower()}"
            declared = access.endpoint_access(app, rule.endpoint)
            if isinstance(declared, frozenset):
                entry["x-permissions"] = sorted(permission.value for permission in declared)
            if parameters:
                entry["parameters"] = entry.get("parameters", []) + parameters
            if is_public:
                entry["security"] = []
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Appliance API",
            "version": __version__,
            "description": "The OpenAI-compatible API of the on-premises LLM appliance.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {str(status): _error(status, text) for status, text in ERRORS.items()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`sk-app-…`) or an access token.",
                },
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "OAuth client authentication: key id and key.",
                },
            },
        },
        "security": [{"bearer": []}],
    }


def _schemas(operations: list[Operation]) -> tuple[dict[str, Any], Refs]:
    """Every model's JSON schema, with shared definitions in one place."""
    wanted: set[tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
        (model, "serialization") for model in MODELS
    }
    for op in operations:
        wanted.add((op.response, "serialization"))
        if op.request is not None:
            wanted.add((op.request, "validation"))
        if op.stream_event is not None:
            wanted.add((op.stream_event, "serialization"))
        wanted.add((op.error_body, "serialization"))
    ordered = sorted(wanted, key=lambda item: (item[0].__name__, item[1]))
    refs, top = models_json_schema(ordered, ref_template=REF)
    return top.get("$defs", {}), {key: ref for key, ref in refs.items()}


def _operation(op: Operation, refs: Refs, *, public: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": refs[(op.response, "serialization")]}}
    if op.stream_event is not None:
        content["text/event-stream"] = {
            "schema": {
                "type": "string",
                "description": "With `stream: true`: `data: <event>` lines, then `data: [DONE]`.",
            },
            "x-event-schema": refs[(op.stream_event, "serialization")],
        }
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    if op.errors is MODEL_CALL_ERRORS:
        responses["200"]["headers"] = RATELIMIT_HEADERS
    for status in op.errors:
        if public and status == 401:
            continue
        if op.error_body is p.ErrorResponse:
            responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
        else:
            schema = refs[(op.error_body, "serialization")]
            responses[str(status)] = {
                "description": f"Error {status}",
                "content": {"application/json": {"schema": schema}},
            }
    if op.unavailable is not None:
        schema = refs[(op.unavailable, "serialization")]
        responses["503"] = {
            "description": "Not ready",
            "content": {"application/json": {"schema": schema}},
        }
    entry: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "responses": responses}
    if op.request is not None:
        entry["requestBody"] = {
            "required": True,
            "content": {op.media: {"schema": refs[(op.request, "validation")]}},
        }
    if op.security is not None:
        entry["security"] = op.security
    if op.errors is MODEL_CALL_ERRORS:
        entry["parameters"] = [CONVERSATION_HEADER, REQUEST_ID_HEADER]
    return entry


def _undocumented(rule: Rule) -> dict[str, Any]:
    return {
        "summary": f"{rule.endpoint} (not described yet)",
        "x-undocumented": True,
        "responses": {"default": {"$ref": "#/components/responses/400"}},
    }


def _path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """Flask's ``/a/<int:id>`` as OpenAPI's ``/a/{id}`` and its path parameters."""
    parameters = []
    for match in _ARGUMENT.finditer(rule.rule):
        kind = "integer" if match["converter"] == "int" else "string"
        parameters.append(
            {"name": match["name"], "in": "path", "required": True, "schema": {"type": kind}}
        )
    return _ARGUMENT.sub(lambda m: "{" + m["name"] + "}", rule.rule), parameters


def _error(status: int, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
    }
    if status == 429:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}, **RATELIMIT_HEADERS}
    return response
