"""Operational state: heartbeats of the background services, the policies in force."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, UTCDateTime, utcnow


class ServiceHeartbeat(Base):
    __tablename__ = "service_heartbeats"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PolicyInForce(Base):
    """What one process has in force: the version (SHA-256) of each policy file, and the
    files it refused. Written by the process's PolicyWatch; read by the portal."""

    __tablename__ = "policy_in_force"

    process: Mapped[str] = mapped_column(String(255), primary_key=True)  # kind:host:pid
    kind: Mapped[str] = mapped_column(String(32), index=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    versions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    errors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
