"""Pseudonym mappings a conversation keeps across requests, sealed (never in clear)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, UTCDateTime


class PrivacyConversation(Base):
    __tablename__ = "privacy_conversations"
    __table_args__ = (UniqueConstraint("owner", "conversation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(160))  # key:<id>, user:<id> or idp:<name>
    conversation: Mapped[str] = mapped_column(String(128))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # nonce + AES-256-GCM ciphertext
    version: Mapped[int] = mapped_column(default=1)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
