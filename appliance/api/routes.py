"""The OpenAI-compatible endpoints. Each handler reads like the data path."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, request, stream_with_context

from appliance import untrusted
from appliance.api import context as ctx
from appliance.api.accounting import finish_call
from appliance.api.feedback import find_call
from appliance.api.pipeline import AnswerPipeline, prepare_request
from appliance.api.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    FeedbackRequest,
    FeedbackResponse,
    ModelRequest,
)
from appliance.api.streaming import relay
from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.principal import Principal, may_invoke, require_model_access
from appliance.auth.rbac import Permission
from appliance.errors import InvalidRequest, NotFound, UpstreamError
from appliance.limits import (
    EffectiveLimits,
    LimitReached,
    check_max_context,
    check_max_tokens,
    limits_for,
    prompt_token_bound,
)
from appliance.upstream.aliases import list_aliases
from appliance.upstream.cards import agreed_fields, listed_fields
from appliance.upstream.registry import MODEL_NAME_RE, list_models, route_for
from appliance.upstream.routes import Route

bp = Blueprint("v1", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)


def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it.

    Nesting deeper than ``untrusted.MAX_DEPTH`` and lone surrogates (a string that is not
    valid Unicode, which the upstream would refuse) are refused here, before any work.
    """
    raw = request.get_data(cache=False)
    try:
        body = untrusted.loads_json(raw, what="The JSON body of your request")
    except (ValueError, UnicodeDecodeError) as exc:
        where = (
            f" (line {exc.lineno} column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise InvalidRequest(
            f"We could not parse the JSON body of your request{where}. "
            "The body must be a JSON object."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The JSON body of your request must be an object.")
    untrusted.refuse_lone_surrogate(body, raw)
    return body


# One listed target: the route of its base model, its adapter, the base model's name.
_Target = tuple[Route, str | None, str]


@bp.get("/models")
@require(Permission.API_MODEL_INVOKE)
def models() -> dict[str, Any]:
    """The models and aliases this caller may use (an alias is listed like a model), with
    what their upstream says of them: ``max_model_len``, ``root``, ``parent`` (vLLM's)."""
    ctx.call().action = AuditAction.API_MODELS_LIST
    api = ctx.state()
    principal = ctx.principal()
    named: list[tuple[str, Any, list[_Target]]] = []
    with api.services.db.session() as session:
        for m in list_models(session):
            if m.enabled and may_invoke(principal, api.services.rbac, m.name):
                named.append((m.name, m.created_at, [(route_for(m), None, m.name)]))
        for a in list_aliases(session):
            if may_invoke(principal, api.services.rbac, a.name):
                live = [t for t in a.targets if t.model.enabled and t.weight > 0]
                targets = [(route_for(t.model), t.adapter, t.model.name) for t in live]
                named.append((a.name, a.created_at, targets))
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": int(created.timestamp()),
                "owned_by": "appliance",
                **_upstream_fields(api, targets),
            }
            for name, created, targets in sorted(named, key=lambda entry: entry[0])
        ],
    }


def _upstream_fields(api: ctx.ApiState, targets: list[_Target]) -> dict[str, Any]:
    return agreed_fields(
        [
            listed_fields(api.upstreams.cards.of(route), route.served_name, adapter, base)
            for route, adapter, base in targets
        ]
    )


@bp.post("/feedback")
@require(Permission.API_MODEL_INVOKE)
def feedback() -> dict[str, Any]:
    """Record a rating of one of the caller's own answers, with how it was routed."""
    call = ctx.call()
    call.action = AuditAction.API_FEEDBACK
    req = FeedbackRequest.model_validate(read_json_object())
    api = ctx.state()
    rated = find_call(api.services.db, req.request_id, ctx.principal().key_prefix)
    call.model = rated.model
    call.details.update(rated_request=req.request_id, rating=req.rating)
    if rated.route:
        call.details["route"] = rated.route
    return FeedbackResponse(request_id=req.request_id, rating=req.rating).model_dump()


@dataclass(frozen=True)
class Endpoint:
    """What differs between the forwarding endpoints: the rest is ``forward``."""

    path: str  # on the upstream
    request: type[ModelRequest]
    action: AuditAction
    details: dict[str, Any] = field(default_factory=dict)


CHAT = Endpoint("/v1/chat/completions", ChatCompletionRequest, AuditAction.API_CHAT_COMPLETION)
COMPLETIONS = Endpoint("/v1/completions", CompletionRequest, AuditAction.API_COMPLETION)
EMBEDDINGS = Endpoint("/v1/embeddings", EmbeddingRequest, AuditAction.API_EMBEDDINGS, {})


@bp.post("/chat/completions")
@require(Permission.API_MODEL_INVOKE)
def chat_completions() -> Any:
    return forward(CHAT)


@bp.post("/completions")
@require(Permission.API_MODEL_INVOKE)
def completions() -> Any:
    return forward(COMPLETIONS)


@bp.post("/embeddings")
@require(Permission.API_MODEL_INVOKE)
def embeddings() -> Any:
    return forward(EMBEDDINGS)


def forward(endpoint: Endpoint) -> Any:
    """Validate → resolve → authorize → forward (or stream) → account."""
    call = ctx.call()
    call.action = endpoint.action
    call.details.update(endpoint.details)
    body = read_json_object()
    req = endpoint.request.model_validate(body)
    api = ctx.state()
    route = _resolve(api, call, req.model)
    if route.alias is not None:  # the alias's drawn target: base model, adapter, version
        call.details["route"] = route.audit_fields()
    require_model_access(ctx.principal(), api.services.rbac, req.model)
    payload = {**body, "model": route.served_name}
    _limit(api, call, req, payload)
    conversation = request.headers.get("X-Conversation-Id")
    answer = prepare_request(
        call,
        ctx.principal(),
        payload,
        alias=req.model,
        privacy=api.services.privacy,
        privacy_key=api.privacy_key,
        content_key=api.content_key,
        finetune=api.services.finetune,
        conversation=(api.conversations, conversation) if conversation is not None else None,
        chat=endpoint is CHAT,
    )
    if call.limits is not None and call.limits.max_context is not None:
        _hold_context(api, route, req, payload, call.limits)
    if req.streams:
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return _stream(api, endpoint.path, route, payload, req, answer)
    result = api.upstreams.post_json(route, endpoint.path, payload, request_id=ctx.request_id())
    if not isinstance(result, dict):
        raise UpstreamError("The upstream answered with JSON that is not an object.")
    answer.whole(result)
    result["model"] = req.model
    return result


def effective_limits(api: ctx.ApiState, principal: Principal) -> EffectiveLimits:
    """The limits a caller's requests are held to: its key's, else its roles'."""
    roles = list(principal.roles)
    return limits_for(
        principal,
        api.services.rbac.limits_of(roles),
        principal.key_requests_per_minute,
        principal.key_tokens_per_day,
        role_aggregate_rpm=api.services.rbac.shared_rpm_of(roles),
    )


def ratelimit_headers() -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers of an authenticated /v1 call: what the caller has
    left after this call's check, or (a call that made none) now; {} when it has no limits."""
    call, principal = g.get("call"), g.get("principal")
    if call is None or principal is None:
        return {}
    if call.budget is not None:
        return call.budget.headers()
    api = ctx.state()
    try:
        return api.limiter.budget(principal, effective_limits(api, principal)).headers()
    except Exception:  # the headers are information: never worth failing the answer for
        log.exception("could not tell the rate-limit budget of %s", principal.name)
        return {}


def _limit(
    api: ctx.ApiState, call: ctx.ApiCall, req: ModelRequest, payload: dict[str, Any]
) -> None:
    """Requests per minute and tokens per day (429), and the role's cap on max_tokens (400)."""
    principal = ctx.principal()
    limits = effective_limits(api, principal)
    try:
        call.budget = api.limiter.check_request(principal, limits)
    except LimitReached as exc:
        call.budget = exc.budget
        raise
    call.limits = limits
    if hasattr(req, "max_tokens"):
        requested = getattr(req, "max_completion_tokens", None) or req.max_tokens
        capped = check_max_tokens(limits, requested)
        if capped is not None and requested is None:
            payload["max_tokens"] = capped


CHAT_PROMPT_FIELDS = ("messages", "tools", "add_generation_prompt")


def _hold_context(
    api: ctx.ApiState,
    route: Route,
    req: ModelRequest,
    payload: dict[str, Any],
    limits: EffectiveLimits,
) -> None:
    """Prompt + completion within the role's max_context (400), counting only when needed."""
    cap = limits.max_context
    if cap is None or not isinstance(req, ChatCompletionRequest | CompletionRequest):
        return
    wanted = payload.get("max_completion_tokens") or payload.get("max_tokens")
    messages = len(req.messages) if isinstance(req, ChatCompletionRequest) else 0
    bound = prompt_token_bound(request.content_length or 0, messages)
    if wanted is not None and request.content_length and bound + wanted <= cap:
        return  # it cannot exceed: no round trip to count
    prompt_tokens = max(_count_prompts(api, route, payload))
    allowed = check_max_context(limits, prompt_tokens, wanted)
    if wanted is None and allowed is not None:
        payload["max_tokens"] = allowed


def _count_prompts(api: ctx.ApiState, route: Route, payload: dict[str, Any]) -> list[int]:
    """Token counts of the request's prompts (token ids are counted here, text upstream)."""
    if "messages" in payload:
        chat: dict[str, Any] = {k: payload[k] for k in CHAT_PROMPT_FIELDS if k in payload}
        return [api.upstreams.count_tokens(route, chat, request_id=ctx.request_id())]
    prompt = payload["prompt"]
    single = isinstance(prompt, str) or (prompt and isinstance(prompt[0], int))
    return [
        len(one)
        if isinstance(one, list)
        else api.upstreams.count_tokens(route, {"prompt": one}, request_id=ctx.request_id())
        for one in ([prompt] if single else prompt)
    ] or [0]


def _resolve(api: ctx.ApiState, call: ctx.ApiCall, name: str) -> Route:
    """The route of a model name; a name no model can have is not looked up."""
    if not MODEL_NAME_RE.match(name):
        raise NotFound(
            f"The model '{name[:128]}' does not exist.", param="model", code="model_not_found"
        )
    call.model = name
    return api.registry.resolve(api.services.db, name)


def _stream(
    api: ctx.ApiState,
    path: str,
    route: Route,
    payload: dict[str, Any],
    req: ModelRequest,
    answer: AnswerPipeline,
) -> Response:
    upstream = api.upstreams.open_stream(route, path, payload, request_id=ctx.request_id())
    # The stream outlives this handler: its audit event is written when it ends.
    g.audit_deferred = True
    call, principal, context, started = (
        ctx.call(),
        ctx.principal(),
        ctx.request_context(),
        g.started,
    )

    def finish(outcome: str) -> None:
        duration = (time.perf_counter() - started) * 1000
        finish_call(
            api,
            call,
            status=200,
            outcome=outcome,
            principal=principal,
            context=context,
            duration_ms=duration,
        )

    events = relay(
        upstream,
        call=call,
        answer=answer,
        model_alias=req.model,
        client_wants_usage=req.wants_usage_in_stream,
        on_finish=finish,
        started=started,
    )
    return Response(
        stream_with_context(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
