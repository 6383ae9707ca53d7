"""Portal sign-in state kept on the server: sessions, and the per-address sign-in throttle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, UTCDateTime, utcnow


class PortalSession(Base):
    """One signed-in browser. Its cookie holds only a random token (signed); the row holds
    who signed in and how, so deleting the row ends the session at once, whatever cookie
    copies exist. Only the token's SHA-256 is stored."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    auth_source: Mapped[str] = mapped_column(String(16))  # local | sso
    # How the second factor stands: totp | none | enrol | idp (appliance.portal.auth).
    mfa: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    # SSO: the ID token, the hint of the IdP's logout.
    id_token: Mapped[str | None] = mapped_column(Text)


class LoginThrottle(Base):
    """Failed sign-ins from one source (an IPv4 address or an IPv6 /64) and its back-off."""

    __tablename__ = "login_throttles"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
