"""One audit event per API request: who, which model, tokens, latency, outcome."""

from __future__ import annotations

import logging

from appliance.api import metrics
from appliance.api.context import ApiCall, ApiState
from appliance.audit.events import RequestContext, event_row
from appliance.auth.principal import Principal
from appliance.finetune.capture import store as store_capture

log = logging.getLogger(__name__)


def outcome_of(status: int) -> str:
    return "success" if status < 400 else "failure"


def finish_call(
    api: ApiState,
    call: ApiCall,
    *,
    status: int,
    outcome: str,
    principal: Principal | None,
    context: RequestContext,
    duration_ms: float,
) -> None:
    """Charge the call's tokens to its limits, then queue its audit event.

    A failure to account or audit is logged loudly, never shown to the caller.
    """
    _charge(api, call, principal, context)
    if call.details.get("privacy"):
        metrics.count_privacy_findings(call.details["privacy"])
    if call.training is not None and outcome == "success" and status < 400:
        store_capture(api.services.db, call.training)
    if not api.services.settings.audit_api_calls:
        return
    try:
        if call.capture is not None:
            call.details.update(call.capture.fields(context.request_id))
        row = event_row(
            call.action,
            outcome=outcome,
            actor=principal.name if principal else None,
            actor_roles=",".join(principal.roles) if principal else None,
            api_key_prefix=principal.key_prefix if principal else None,
            context=context,
            status_code=status,
            model=call.model,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            duration_ms=round(duration_ms, 3),
            **call.details,
        )
        api.audit.submit(row, key_id=principal.key_id if principal else None)
    except Exception:
        log.exception("could not write the audit event of request %s", context.request_id)


def _charge(
    api: ApiState, call: ApiCall, principal: Principal | None, context: RequestContext
) -> None:
    tokens = (call.prompt_tokens or 0) + (call.completion_tokens or 0)
    if call.limits is not None and call.model:  # the call reached a resolved model
        metrics.count_tokens(call.model, call.prompt_tokens, call.completion_tokens)
    if principal is not None and call.limits is not None and tokens > 0:
        try:
            api.limiter.charge_tokens(principal, call.limits, tokens)
        except Exception:
            log.exception("could not charge %d tokens of request %s", tokens, context.request_id)
