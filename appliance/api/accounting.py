"""One audit event per API request: who, which model, tokens, latency, outcome."""

from __future__ import annotations

import logging

from sqlalchemy import update

from appliance.api.context import ApiCall
from appliance.audit.events import RequestContext, record
from appliance.auth.principal import Principal
from appliance.db import Database
from appliance.models import ApiKey, utcnow

log = logging.getLogger(__name__)


def outcome_of(status: int) -> str:
    return "success" if status < 400 else "failure"


def write_api_event(
    db: Database,
    call: ApiCall,
    *,
    status: int,
    outcome: str,
    principal: Principal | None,
    context: RequestContext,
    duration_ms: float,
) -> None:
    """Record the call; a failure to audit is logged loudly, never shown to the caller."""
    try:
        with db.session() as session:
            record(
                session,
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
            if principal is not None and principal.key_id is not None:
                session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == principal.key_id)
                    .values(last_used_at=utcnow())
                )
    except Exception:
        log.exception("could not write the audit event of request %s", context.request_id)
