"""The OpenAI-compatible endpoints. Each handler reads like the data path."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, g, request, stream_with_context

from appliance.api import context as ctx
from appliance.api.accounting import write_api_event
from appliance.api.protocol import ChatCompletionRequest
from appliance.api.streaming import relay
from appliance.audit.events import AuditAction
from appliance.auth.principal import may_invoke, require_model_access
from appliance.errors import InvalidRequest
from appliance.upstream.registry import list_models, resolve_route

bp = Blueprint("v1", __name__, url_prefix="/v1")


def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw)
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
    return body


@bp.get("/models")
def models() -> dict[str, Any]:
    ctx.call().action = AuditAction.API_MODELS_LIST
    api = ctx.state()
    principal = ctx.principal()
    with api.services.db.session() as session:
        visible = [
            model
            for model in list_models(session)
            if model.enabled and may_invoke(principal, api.services.rbac, model.name)
        ]
    return {
        "object": "list",
        "data": [
            {
                "id": m.name,
                "object": "model",
                "created": int(m.created_at.timestamp()),
                "owned_by": "appliance",
            }
            for m in visible
        ],
    }


@bp.post("/chat/completions")
def chat_completions() -> Any:
    call = ctx.call()
    call.action = AuditAction.API_CHAT_COMPLETION
    body = read_json_object()
    chat = ChatCompletionRequest.model_validate(body)
    call.model = chat.model
    api = ctx.state()
    with api.services.db.session() as session:
        route = resolve_route(session, chat.model)
    require_model_access(ctx.principal(), api.services.rbac, chat.model)
    payload = {**body, "model": route.served_name}
    if chat.stream:
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return _stream(api, route.model, chat.wants_usage_in_stream, route, payload)
    result = api.upstreams.post_json(route, "/v1/chat/completions", payload)
    _account(call, result)
    result["model"] = chat.model
    return result


def _account(call: ctx.ApiCall, result: dict[str, Any]) -> None:
    usage = result.get("usage") or {}
    call.prompt_tokens = usage.get("prompt_tokens")
    call.completion_tokens = usage.get("completion_tokens")
    reasons = [
        c.get("finish_reason") for c in result.get("choices") or [] if c.get("finish_reason")
    ]
    if reasons:
        call.details["finish_reason"] = reasons[0]


def _stream(
    api: ctx.ApiState, alias: str, wants_usage: bool, route: Any, payload: dict[str, Any]
) -> Response:
    upstream = api.upstreams.open_stream(route, "/v1/chat/completions", payload)
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
        write_api_event(
            api.services.db,
            call,
            status=200,
            outcome=outcome,
            principal=principal,
            context=context,
            duration_ms=duration,
        )

    events = relay(
        upstream, call=call, model_alias=alias, client_wants_usage=wants_usage, on_finish=finish
    )
    return Response(
        stream_with_context(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
