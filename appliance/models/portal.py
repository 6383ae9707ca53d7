"""Settings an admin changes in the portal at run time (SSO client, lockout, sessions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, UTCDateTime, utcnow


class PortalSetting(Base):
    """One row: validated values as JSON; the SSO client secret sealed apart from them."""

    __tablename__ = "portal_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # AES-256-GCM under a key derived from the master key; never shown back.
    sealed_client_secret: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128))
