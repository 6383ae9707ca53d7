"""What the portal's pages share: recording admin actions, pagination, confirmations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from appliance.audit.events import AuditAction, record
from appliance.models import AuditEvent
from appliance.portal.auth import signed_in_user
from appliance.portal.context import db_session, request_context

T = TypeVar("T")
PAGE_SIZE = 25


def audit(
    action: AuditAction, *, target: str | None = None, outcome: str = "success", **fields: Any
) -> AuditEvent:
    """Record an admin action of the signed-in user in the request's session.

    The caller commits it together with the change it describes.
    """
    user = signed_in_user()
    return record(
        db_session(),
        action,
        outcome=outcome,
        actor=user.username,
        actor_roles=",".join(user.role_names)[:255],
        target=target[:255] if target else None,
        context=request_context(),
        **fields,
    )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 1_000_000))
    except ValueError:
        return 1


def paginate(session: Session, query: Select[Any], size: int = PAGE_SIZE) -> Page[Any]:
    """One page of ``query`` (already ordered), the number from ``?page=``."""
    number = page_number()
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = list(session.scalars(query.limit(size).offset((number - 1) * size)))
    return Page(items=items, number=number, size=size, total=total)
