"""Finding the call a feedback rates: one of the same key's model calls, from the audit
trail (so the rating carries the alias version that answered it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from appliance.audit.events import AuditAction
from appliance.db import Database
from appliance.errors import NotFound
from appliance.models import AuditEvent

RATED_ACTIONS = (
    AuditAction.API_CHAT_COMPLETION,
    AuditAction.API_COMPLETION,
    AuditAction.API_RESPONSES,
)


@dataclass(frozen=True)
class RatedCall:
    model: str | None
    route: dict[str, Any] | None


def find_call(db: Database, request_id: str, key_prefix: str | None) -> RatedCall:
    """The caller's own completion call ``request_id``; NotFound otherwise (another key's
    calls are not told apart from calls that do not exist)."""
    with db.session() as session:
        row = session.execute(
            select(AuditEvent.model, AuditEvent.details)
            .where(
                AuditEvent.request_id == request_id,
                AuditEvent.action.in_([str(a) for a in RATED_ACTIONS]),
                AuditEvent.api_key_prefix == key_prefix,
            )
            .limit(1)
        ).first()
    if row is None or key_prefix is None:
        raise NotFound(
            f"No completion with request id '{request_id}' was made with this key.",
            param="request_id",
            code="request_not_found",
        )
    model, details = row
    return RatedCall(model, (details or {}).get("route"))
