"""The OpenAI-compatible endpoints, and vLLM's others. Each handler reads like the data path.

Every endpoint vLLM's OpenAI server has is forwarded, through the same stages: the key,
the permission of its family (``Permission``), the model's route and scope, the rate and
token limits, desensitization of every text it carries, the answer's texts back through
the answer pipeline (restored, output-scanned), and one audit event with its own action.
vLLM serves some at its root (``/tokenize``, ``/score``, ``/rerank``...): so does this app
(``root``), and so they are sent upstream.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, g, request, stream_with_context
from urllib3.filepost import encode_multipart_formdata

from appliance import untrusted
from appliance.api import context as ctx
from appliance.api.accounting import finish_call
from appliance.api.admission import hold_context, limit
from appliance.api.content import moderate
from appliance.api.endpoints import CHAT, RESPONSES, ROOT_PATHS, ROUTES, TOKENIZE, Endpoint, Rule
from appliance.api.feedback import find_call
from appliance.api.pipeline import AnswerPipeline, choice_texts, prepare_request, transcript_texts
from appliance.api.protocol import (
    AudioRequest,
    FeedbackRequest,
    FeedbackResponse,
    ModelRequest,
    ModerationRequest,
)
from appliance.api.responses import ResponseEvents
from appliance.api.streaming import relay, relay_events
from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.principal import may_invoke, require_model_access
from appliance.auth.rbac import API_INVOKE_PERMISSIONS, Permission
from appliance.errors import InvalidRequest, NotFound, UpstreamError
from appliance.upstream.aliases import list_aliases
from appliance.upstream.cards import agreed_fields, listed_fields
from appliance.upstream.client import UpstreamStream
from appliance.upstream.registry import MODEL_NAME_RE, list_models, route_for
from appliance.upstream.routes import Route

bp = Blueprint("v1", __name__, url_prefix="/v1")
root = Blueprint("vllm", __name__)
log = logging.getLogger(__name__)
MODERATION_MODEL = "appliance-content-policy"  # what /v1/moderations says answered


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
    limit(api, call, req, payload)
    answer = _prepare(api, call, req, payload, chat=endpoint is CHAT, system=endpoint.system)
    if call.limits is not None and call.limits.max_context is not None:
        hold_context(api, route, req, payload, call.limits)
    if req.streams:
        named_events = endpoint is RESPONSES
        if not named_events:
            options = body.get("stream_options") or {}
            payload["stream_options"] = {**options, "include_usage": True}
        upstream = api.upstreams.open_stream(
            route, endpoint.path, payload, request_id=ctx.request_id()
        )
        return _relay(api, upstream, req, answer, named_events=named_events)
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
    limit(api, call, req, {})
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
    api: ctx.ApiState,
    call: ctx.ApiCall,
    req: ModelRequest,
    payload: dict[str, Any],
    *,
    chat: bool,
    system: str | None = None,
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
        content=api.services.content,
        canary_key=api.canary_key,
        system_prompt_at=system,
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


def _resolve(api: ctx.ApiState, call: ctx.ApiCall, name: str) -> Route:
    """The route of a model name; a name no model can have is not looked up."""
    if not MODEL_NAME_RE.match(name):
        raise NotFound(
            f"The model '{name[:128]}' does not exist.", param="model", code="model_not_found"
        )
    call.model = name
    return api.registry.resolve(api.services.db, name)


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


def _relay(
    api: ctx.ApiState,
    upstream: UpstreamStream,
    req: ModelRequest,
    answer: AnswerPipeline,
    *,
    named_events: bool = False,
) -> Response:
    """The caller's event stream: chat-style chunks, or (the Responses API) named events,
    each through the answer pipeline."""
    if named_events:
        events = relay_events(
            upstream,
            call=ctx.call(),
            events=ResponseEvents(answer, req.model),
            on_finish=_deferred_finish(api),
            started=g.started,
        )
    else:
        events = relay(
            upstream,
            call=ctx.call(),
            answer=answer,
            model_alias=req.model,
            client_wants_usage=req.wants_usage_in_stream,
            on_finish=_deferred_finish(api),
            started=g.started,
        )
    return Response(
        stream_with_context(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@bp.post("/moderations")
@require(Permission.API_MODERATIONS_INVOKE)
def moderations() -> dict[str, Any]:
    """OpenAI's moderation endpoint, answered by the content policy (no model is called)."""
    call = ctx.call()
    call.action = AuditAction.API_MODERATION
    req = ModerationRequest.model_validate(read_json_object())
    texts = req.texts()
    model = req.model or MODERATION_MODEL
    call.model = model[:128]
    api = ctx.state()
    return moderate(api.services.content, ctx.principal(), call, texts, model, ctx.request_id())


def _view(rule: Rule) -> Any:
    """The view of one forwarding rule, declaring the permission of its family."""
    send = forward_audio if rule.multipart else forward

    def view() -> Any:
        return send(rule.endpoint)

    view.__name__ = view.__qualname__ = rule.name
    view.__doc__ = f"Forward {rule.endpoint.path} upstream."
    return require(rule.endpoint.permission)(view)


for _rule in ROUTES:
    (bp if _rule.blueprint == "v1" else root).add_url_rule(
        _rule.rule, view_func=_view(_rule), methods=["POST"]
    )
