"""Audit events, shaped after the Elastic Common Schema (flattened into columns)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, UTCDateTime, utcnow


def new_event_id() -> str:
    return str(uuid.uuid4())


class AuditEvent(Base):
    __tablename__ = "audit_events"

    # Insertion order; the sealer chains events in this order.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_event_id)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure | unknown
    category: Mapped[str] = mapped_column(String(16))  # api | admin | system
    actor: Mapped[str | None] = mapped_column(String(128), index=True)
    actor_roles: Mapped[str | None] = mapped_column(String(255))
    api_key_prefix: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    http_method: Mapped[str | None] = mapped_column(String(8))
    url_path: Mapped[str | None] = mapped_column(String(512))
    status_code: Mapped[int | None]
    target: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(128), index=True)
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    duration_ms: Mapped[float | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
