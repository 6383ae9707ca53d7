"""The OpenAI-compatible endpoints, and vLLM's others. Each handler reads like the data path.

Every endpoint vLLM's OpenAI server has is forwarded, through the same stages: the key,
the permission of its family (``Permission``), the model's route and scope, the rate and
token limits, desensitization of every text it carries, the answer's texts back through
the answer pipeline (restored, output-scanned), and one audit event with its own action.
vLLM serves some at its root (``/tokenize``, ``/score``, ``/rerank``...): so does this app
(``root``), and so they are sent upstream.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, request, stream_with_context
from urllib3.filepost import encode_multipart_formdata

from appliance import untrusted
from appliance.api import context as ctx
from appliance.api.accounting import finish_call
from appliance.api.feedback import find_call
from appliance.api.pipeline import (
    AnswerPipeline,
    Texts,
    choice_texts,
    prepare_request,
    rerank_texts,
    transcript_texts,
)
from appliance.api.protocol import (
    AudioRequest,
    ChatCompletionRequest,
    ClassificationRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    FeedbackRequest,
    FeedbackResponse,
    ModelRequest,
    PoolingRequest,
    RerankRequest,
    ResponsesRequest,
    ScoreRequest,
    TokenizeRequest,
)
from appliance.api.responses import ResponseEvents, response_texts
from appliance.api.streaming import relay, relay_events
from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.principal import Principal, may_invoke, require_model_access
from appliance.auth.rbac import API_INVOKE_PERMISSIONS, Permission
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
from appliance.upstream.client import UpstreamStream
from appliance.upstream.registry import MODEL_NAME_RE, list_models, route_for
from appliance.upstream.routes import Route

bp = Blueprint("v1", __name__, url_prefix="/v1")
# What vLLM serves at its root rather than under /v1.
root = Blueprint("vllm", __name__)
ROOT_PATHS = frozenset(
    {"/tokenize", "/detokenize", "/score", "/rerank", "/v2/rerank", "/pooling", "/classify"}
)
log = logging.getLogger(__name__)


def is_api_path(path: str) -> bool:
    """A path of the API's calls (``/v1/...`` and vLLM's root endpoints)."""
    return path.startswith("/v1/") or path in ROOT_PATHS


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
@require(*API_INVOKE_PERMISSIONS)
def models() -> dict[str, Any]:
    """The models and aliases this caller may use (an alias is listed like a model), with
    what their upstream says of them: ``max_model_len``, ``root``, ``parent`` (vLLM's).
    A caller that may use any endpoint family (chat, rerank, audio...) lists its models."""
    ctx.call().action = AuditAction.API_MODELS_LIST
    api = ctx.state()
    principal = ctx.principal()
    rbac = api.services.rbac
    named: list[tuple[str, Any, list[_Target]]] = []
    with api.services.db.session() as session:
        for m in list_models(session):
            if m.enabled and may_invoke(principal, rbac, m.name, API_INVOKE_PERMISSIONS):
                named.append((m.name, m.created_at, [(route_for(m), None, m.name)]))
        for a in list_aliases(session):
            if may_invoke(principal, rbac, a.name, API_INVOKE_PERMISSIONS):
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
    permission: Permission = Permission.API_MODEL_INVOKE
    texts: Texts | None = choice_texts  # where the answer's texts are (None: it has none)

    def at(self, path: str) -> Endpoint:
        """The same endpoint under another of vLLM's paths (sent upstream as called)."""
        return dataclasses.replace(self, path=path)


CHAT = Endpoint("/v1/chat/completions", ChatCompletionRequest, AuditAction.API_CHAT_COMPLETION)
COMPLETIONS = Endpoint("/v1/completions", CompletionRequest, AuditAction.API_COMPLETION)
EMBEDDINGS = Endpoint("/v1/embeddings", EmbeddingRequest, AuditAction.API_EMBEDDINGS, {})
RESPONSES = Endpoint(
    "/v1/responses",
    ResponsesRequest,
    AuditAction.API_RESPONSES,
    permission=Permission.API_RESPONSES_INVOKE,
    texts=response_texts,
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


@bp.post("/responses")
@require(Permission.API_RESPONSES_INVOKE)
def responses() -> Any:
    return forward(RESPONSES)


@root.post("/tokenize")
@require(Permission.API_TOKENIZE_INVOKE)
def tokenize() -> Any:
    return forward(TOKENIZE)


@root.post("/detokenize")
@require(Permission.API_TOKENIZE_INVOKE)
def detokenize() -> Any:
    return forward(DETOKENIZE)


@root.post("/score")
@require(Permission.API_SCORE_INVOKE)
def score() -> Any:
    return forward(SCORE)


@bp.post("/score")
@require(Permission.API_SCORE_INVOKE)
def score_v1() -> Any:
    return forward(SCORE.at("/v1/score"))


@root.post("/rerank")
@require(Permission.API_RERANK_INVOKE)
def rerank() -> Any:
    return forward(RERANK)


@bp.post("/rerank")
@require(Permission.API_RERANK_INVOKE)
def rerank_v1() -> Any:
    return forward(RERANK.at("/v1/rerank"))


@root.post("/v2/rerank")
@require(Permission.API_RERANK_INVOKE)
def rerank_v2() -> Any:
    return forward(RERANK.at("/v2/rerank"))


@root.post("/pooling")
@require(Permission.API_POOLING_INVOKE)
def pooling() -> Any:
    return forward(POOLING)


@root.post("/classify")
@require(Permission.API_CLASSIFY_INVOKE)
def classify() -> Any:
    return forward(CLASSIFY)


@bp.post("/audio/transcriptions")
@require(Permission.API_AUDIO_INVOKE)
def audio_transcriptions() -> Any:
    return forward_audio(TRANSCRIPTIONS)


@bp.post("/audio/translations")
@require(Permission.API_AUDIO_INVOKE)
def audio_translations() -> Any:
    return forward_audio(TRANSLATIONS)


def forward(endpoint: Endpoint) -> Any:
    """Validate → resolve → authorize → forward (or stream) → account."""
    call = ctx.call()
    call.action = endpoint.action
    call.details.update(endpoint.details)
    body = read_json_object()
    req = endpoint.request.model_validate(body)
    req.check()
    api = ctx.state()
    route = _authorize(api, call, req, endpoint)
    payload = {**body, "model": route.served_name}
    _limit(api, call, req, payload)
    answer = _prepare(api, call, req, payload, chat=endpoint is CHAT)
    if call.limits is not None and call.limits.max_context is not None:
        _hold_context(api, route, req, payload, call.limits)
    if req.streams and endpoint is RESPONSES:
        return _stream_events(api, endpoint.path, route, payload, req, answer)
    if req.streams:
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return _stream(api, endpoint.path, route, payload, req, answer)
    result = api.upstreams.post_json(route, endpoint.path, payload, request_id=ctx.request_id())
    if not isinstance(result, dict):
        raise UpstreamError("The upstream answered with JSON that is not an object.")
    _answer(call, answer, endpoint, result)
    if endpoint.texts is choice_texts or "model" in result:
        result["model"] = req.model
    return result


def forward_audio(endpoint: Endpoint) -> Any:
    """A transcription or translation: a multipart form (the audio file, the model, its
    options) passed on as it came, within the body size limit, but for the model's name
    and the ``prompt``, which is desensitized. The audio itself cannot be: what it says
    reaches the model as said, which is why audio is a permission of its own. The
    transcript the model writes is output-scanned like any answer."""
    call = ctx.call()
    call.action = endpoint.action
    if request.mimetype != "multipart/form-data":
        raise InvalidRequest(
            "This endpoint takes a multipart/form-data body: the audio 'file' and the 'model'.",
            param="file",
        )
    upload = request.files.get("file")
    fields = list(request.form.items(multi=True))
    firsts = {name: request.form[name] for name in request.form}
    req = AudioRequest.model_validate({**firsts, **({"file": b""} if upload else {})})
    if upload is None:  # refused by the validation already
        raise InvalidRequest("Missing required parameter: 'file'.", param="file")
    api = ctx.state()
    route = _authorize(api, call, req, endpoint)
    _limit(api, call, req, {})
    texts: dict[str, Any] = {"prompt": firsts["prompt"]} if "prompt" in firsts else {}
    answer = _prepare(api, call, req, texts, chat=False)
    audio = upload.read()
    call.details["audio"] = {
        "bytes": len(audio),
        "content_type": upload.mimetype or None,
        "desensitized": False,  # audio reaches the model as it was sent
    }
    sent = [
        (name, route.served_name if name == "model" else texts.get(name, value))
        for name, value in fields
    ]
    kind = upload.mimetype or "application/octet-stream"
    body, content_type = encode_multipart_formdata(
        [*sent, ("file", (upload.filename or "audio", audio, kind))]
    )
    if req.streams:
        upstream = api.upstreams.open_body_stream(
            route, endpoint.path, body, content_type, request_id=ctx.request_id()
        )
        return _relay(api, upstream, req, answer)
    answered_as, data = api.upstreams.post_body(
        route, endpoint.path, body, content_type, request_id=ctx.request_id()
    )
    if answered_as.split(";")[0].strip() == "application/json":
        try:
            result = json.loads(data)
        except ValueError:
            raise UpstreamError("The upstream answered with a body that is not JSON.") from None
        if not isinstance(result, dict):
            raise UpstreamError("The upstream answered with JSON that is not an object.")
        _answer(call, answer, endpoint, result)
        return result
    plain = {"text": data.decode("utf-8", "replace")}  # text, srt, vtt: one text
    answer.whole(plain, transcript_texts)
    return Response(plain["text"], content_type=answered_as)


def _authorize(
    api: ctx.ApiState, call: ctx.ApiCall, req: ModelRequest, endpoint: Endpoint
) -> Route:
    """The route of the request's model, once the caller may use it through this endpoint."""
    route = _resolve(api, call, req.model)
    if route.alias is not None:  # the alias's drawn target: base model, adapter, version
        call.details["route"] = route.audit_fields()
    require_model_access(ctx.principal(), api.services.rbac, req.model, endpoint.permission)
    return route


def _prepare(
    api: ctx.ApiState, call: ctx.ApiCall, req: ModelRequest, payload: dict[str, Any], *, chat: bool
) -> AnswerPipeline:
    conversation = request.headers.get("X-Conversation-Id")
    return prepare_request(
        call,
        ctx.principal(),
        payload,
        alias=req.model,
        privacy=api.services.privacy,
        privacy_key=api.privacy_key,
        content_key=api.content_key,
        finetune=api.services.finetune,
        conversation=(api.conversations, conversation) if conversation is not None else None,
        chat=chat,
    )


def _answer(
    call: ctx.ApiCall, answer: AnswerPipeline, endpoint: Endpoint, result: dict[str, Any]
) -> None:
    """A whole answer through the answer pipeline, with what its audit event records."""
    answer.whole(result, endpoint.texts or _no_texts)
    count = result.get("count")
    if endpoint is TOKENIZE and isinstance(count, int) and not isinstance(count, bool):
        call.details["token_count"] = count  # a count, not tokens used: nothing charged


def _no_texts(_body: Any) -> Any:
    return iter(())


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
    if req.OUTPUT_TOKENS:
        requested = req.output_tokens()
        try:
            capped = check_max_tokens(limits, requested)
        except InvalidRequest as exc:
            if "max_tokens" not in req.OUTPUT_TOKENS:  # named as this endpoint names it
                exc.message = exc.message.replace("max_tokens", req.OUTPUT_TOKENS[0], 1)
                exc.param = req.OUTPUT_TOKENS[0]
            raise
        if capped is not None and requested is None:
            payload[req.OUTPUT_TOKENS[-1]] = capped


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
    generates = ChatCompletionRequest | CompletionRequest | ResponsesRequest
    if cap is None or not isinstance(req, generates):
        return
    wanted = next((payload[n] for n in req.OUTPUT_TOKENS if payload.get(n) is not None), None)
    if isinstance(req, ChatCompletionRequest):
        messages = len(req.messages)
    elif isinstance(req, ResponsesRequest):
        messages = len(req.input) + 1 if isinstance(req.input, list) else 2
    else:
        messages = 0
    bound = prompt_token_bound(request.content_length or 0, messages)
    if wanted is not None and request.content_length and bound + wanted <= cap:
        return  # it cannot exceed: no round trip to count
    if payload.get("prompt_embeds") is not None:
        raise InvalidRequest(
            f"The context limit of this key ({cap} tokens) cannot be checked for "
            "prompt_embeds this large: send fewer, or a smaller max_tokens.",
            param="prompt_embeds",
            code="context_length_exceeded",
        )
    prompt_tokens = max(_count_prompts(api, route, payload))
    allowed = check_max_context(limits, prompt_tokens, wanted)
    if wanted is None and allowed is not None:
        payload[req.OUTPUT_TOKENS[-1]] = allowed


def _count_prompts(api: ctx.ApiState, route: Route, payload: dict[str, Any]) -> list[int]:
    """Token counts of the request's prompts (token ids are counted here, text upstream)."""
    if "messages" in payload:
        chat: dict[str, Any] = {k: payload[k] for k in CHAT_PROMPT_FIELDS if k in payload}
        return [api.upstreams.count_tokens(route, chat, request_id=ctx.request_id())]
    if "input" in payload:  # the Responses API: its input as the chat it amounts to
        as_chat = {"messages": responses_as_messages(payload)}
        return [api.upstreams.count_tokens(route, as_chat, request_id=ctx.request_id())]
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


def responses_as_messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses API request as the chat messages it amounts to, to count its tokens:
    the instructions as the system message, each input item's text as one message."""
    messages: list[dict[str, Any]] = []
    if isinstance(payload.get("instructions"), str):
        messages.append({"role": "system", "content": payload["instructions"]})
    items = payload.get("input")
    for item in [items] if isinstance(items, str) else items if isinstance(items, list) else []:
        if isinstance(item, str):
            messages.append({"role": "user", "content": item})
            continue
        if not isinstance(item, dict):
            continue
        role = item.get("role") if isinstance(item.get("role"), str) else "user"
        text = "\n".join(_item_text(item))
        messages.append({"role": "assistant" if role == "assistant" else "user", "content": text})
    return messages or [{"role": "user", "content": ""}]


def _item_text(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _item_text(item)]
    if isinstance(value, dict):
        return [
            text
            for key in ("content", "text", "arguments", "output", "summary", "input")
            for text in _item_text(value.get(key))
        ]
    return []


def _deferred_finish(api: ctx.ApiState) -> Any:
    """``on_finish`` of a stream, which outlives its handler: its audit event is written
    when it ends."""
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

    return finish


def _event_stream(events: Any) -> Response:
    return Response(
        stream_with_context(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _stream(
    api: ctx.ApiState,
    path: str,
    route: Route,
    payload: dict[str, Any],
    req: ModelRequest,
    answer: AnswerPipeline,
) -> Response:
    upstream = api.upstreams.open_stream(route, path, payload, request_id=ctx.request_id())
    return _relay(api, upstream, req, answer)


def _relay(
    api: ctx.ApiState, upstream: UpstreamStream, req: ModelRequest, answer: AnswerPipeline
) -> Response:
    events = relay(
        upstream,
        call=ctx.call(),
        answer=answer,
        model_alias=req.model,
        client_wants_usage=req.wants_usage_in_stream,
        on_finish=_deferred_finish(api),
        started=g.started,
    )
    return _event_stream(events)


def _stream_events(
    api: ctx.ApiState,
    path: str,
    route: Route,
    payload: dict[str, Any],
    req: ModelRequest,
    answer: AnswerPipeline,
) -> Response:
    """A streamed response of the Responses API: named events, each through the pipeline."""
    upstream = api.upstreams.open_stream(route, path, payload, request_id=ctx.request_id())
    events = relay_events(
        upstream,
        call=ctx.call(),
        events=ResponseEvents(answer, req.model),
        on_finish=_deferred_finish(api),
        started=g.started,
    )
    return _event_stream(events)
