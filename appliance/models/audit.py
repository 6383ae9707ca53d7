"""Audit events, shaped after the Elastic Common Schema (flattened into columns)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import text

from appliance.models.base import Base, UTCDateTime, utcnow

BigPos = BigInteger().with_variant(Integer, "sqlite")


def new_event_id() -> str:
    return str(uuid.uuid4())


class AuditEvent(Base):
    __tablename__ = "audit_events"

    # Insertion order; the sealer chains events in this order.
    seq: Mapped[int] = mapped_column(BigPos, primary_key=True, autoincrement=True)
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
    # Set once by the sealer, never by writers: the event's place in the hash chain and
    # the chain's hash up to and including it.
    chain_pos: Mapped[int | None] = mapped_column(BigPos, unique=True)
    chain_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        # The sealer's "what is not sealed yet", without scanning what is.
        Index(
            "ix_audit_events_unsealed",
            "seq",
            postgresql_where=text("chain_pos IS NULL"),
            sqlite_where=text("chain_pos IS NULL"),
        ),
    )


class AuditChainHead(Base):
    """The chain's last sealed position and hash: one row, locked by the sealer."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_pos: Mapped[int] = mapped_column(BigPos, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditCheckpoint(Base):
    """A signed statement "the chain's hash at position N is H", for export off the box."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_pos: Mapped[int] = mapped_column(BigPos, index=True)
    chain_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    key_id: Mapped[str] = mapped_column(String(16))  # the signing key's fingerprint
    signature: Mapped[str] = mapped_column(String(128))  # Ed25519, base64


class AuditSinkCursor(Base):
    """How far a sink (Elasticsearch, the JSON-lines file) has shipped the chain."""

    __tablename__ = "audit_sink_cursors"

    sink: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_pos: Mapped[int] = mapped_column(BigPos, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    failures: Mapped[int] = mapped_column(default=0)  # consecutive failed attempts
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditShipError(Base):
    """A document a sink refused: kept and shown, never dropped silently."""

    __tablename__ = "audit_ship_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    sink: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    chain_pos: Mapped[int] = mapped_column(BigPos)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
