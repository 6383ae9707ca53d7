"""What a call is held to before it is forwarded: its rate and token limits, the role's
caps on ``max_tokens`` and on the whole context, and OpenAI's ``x-ratelimit-*`` headers
that tell the caller what it has left."""

from __future__ import annotations

import logging
from typing import Any

from flask import g, request

from appliance.api import context as ctx
from appliance.api.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ModelRequest,
    ResponsesRequest,
)
from appliance.auth.principal import Principal
from appliance.errors import InvalidRequest
from appliance.limits import (
    EffectiveLimits,
    LimitReached,
    check_max_context,
    check_max_tokens,
    limits_for,
    prompt_token_bound,
)
from appliance.upstream.routes import Route

log = logging.getLogger(__name__)


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


def limit(api: ctx.ApiState, call: ctx.ApiCall, req: ModelRequest, payload: dict[str, Any]) -> None:
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


def hold_context(
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
    prompt_tokens = max(count_prompts(api, route, payload))
    allowed = check_max_context(limits, prompt_tokens, wanted)
    if wanted is None and allowed is not None:
        payload[req.OUTPUT_TOKENS[-1]] = allowed


def count_prompts(api: ctx.ApiState, route: Route, payload: dict[str, Any]) -> list[int]:
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
