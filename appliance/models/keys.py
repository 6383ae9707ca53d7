"""API keys: shown once, stored only as a SHA-256 hash, identified by a public prefix."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.models.base import Base, UTCDateTime, utcnow
from appliance.models.users import User


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The public part of the key ("sk-app-XXXXXXXX"), safe to show and to log.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Which models the key may call: a glob such as "*" or "deepseek-*".
    models: Mapped[str] = mapped_column(String(255), default="*")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Per-key limits; None means the limits of the owner's roles apply.
    requests_per_minute: Mapped[int | None]
    tokens_per_day: Mapped[int | None]

    user: Mapped[User] = relationship(lazy="joined")
