"""Portal sessions kept on the server (``portal_sessions``), so that they can be ended.

The browser's cookie carries only a random token (in Flask's signed cookie); the row
says whose session it is, how they signed in, when (absolute limit) and when it was last
used (idle limit), and from where. Only the token's SHA-256 is stored, so a copy of the
table opens no session. Deleting the row ends the session at once: a copied cookie then
opens nothing. The portal (``appliance.portal.auth``) records every ending in the audit
trail; these functions only change the table.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from appliance.models import PortalSession, User, utcnow

TOKEN_BYTES = 32
# last_seen_at is written at most this often (not on every request); the idle limit is
# at least a minute, so a session may end up to this much early.
TOUCH_EVERY = timedelta(seconds=10)

# Why a session ended (the audit event's details.reason).
LOGOUT = "logout"
IDLE = "idle"
ABSOLUTE = "absolute"
RENEWED = "renewed"  # a new sign-in (or TOTP enrolment) in the same browser
PASSWORD_CHANGE = "password_change"  # noqa: S105 (a reason, not a password)
PASSWORD_RESET = "password_reset"  # noqa: S105
TOTP_RESET = "totp_reset"
DEACTIVATED = "deactivated"
SIGN_OUT_EVERYWHERE = "sign_out_everywhere"
ENDED_BY_ADMIN = "ended_by_admin"
ENDED_BY_USER = "ended_by_user"
SECOND_FACTOR_REQUIRED = "second_factor_required"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    session: Session,
    user: User,
    *,
    auth_source: str,
    mfa: str,
    source_ip: str | None = None,
    user_agent: str | None = None,
    id_token: str | None = None,
    now: datetime | None = None,
) -> tuple[PortalSession, str]:
    """A new session of ``user``: its row and the token its cookie carries."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = now or utcnow()
    row = PortalSession(
        token_hash=token_hash(token),
        user_id=user.id,
        auth_source=auth_source,
        mfa=mfa,
        created_at=now,
        last_seen_at=now,
        source_ip=(source_ip or "")[:64] or None,
        user_agent=(user_agent or "")[:255] or None,
        id_token=id_token,
    )
    session.add(row)
    session.flush()
    return row, token


def find(session: Session, token: str) -> PortalSession | None:
    """The live row of a cookie's token, or None (ended, or never existed)."""
    if not token or len(token) > 128:
        return None
    query = select(PortalSession).where(PortalSession.token_hash == token_hash(token))
    return session.scalar(query)


def expiry(
    row: PortalSession, *, idle: timedelta, absolute: timedelta, now: datetime | None = None
) -> str | None:
    """Why ``row`` has expired (IDLE or ABSOLUTE), or None while it is valid."""
    now = now or utcnow()
    if now - row.created_at > absolute:
        return ABSOLUTE
    if now - row.last_seen_at > idle:
        return IDLE
    return None


def touch(session: Session, row: PortalSession, now: datetime | None = None) -> bool:
    """Note a request of this session; True if it wrote (the caller commits)."""
    now = now or utcnow()
    if now - row.last_seen_at < TOUCH_EVERY:
        return False
    # A statement, not a flush: a row ended meanwhile by another request stays ended.
    session.execute(
        update(PortalSession)
        .where(PortalSession.id == row.id)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    row.last_seen_at = now
    return True


def of_user(session: Session, user_id: int) -> Sequence[PortalSession]:
    """The user's sessions, the most recently used first."""
    return session.scalars(
        select(PortalSession)
        .where(PortalSession.user_id == user_id)
        .order_by(PortalSession.last_seen_at.desc(), PortalSession.id.desc())
    ).all()


def end(session: Session, row: PortalSession) -> None:
    """End one session (ended meanwhile by another request: nothing to do)."""
    session.execute(delete(PortalSession).where(PortalSession.id == row.id))


def end_all(session: Session, user_id: int) -> int:
    """End every session of the user; how many there were."""
    ended = session.scalars(
        delete(PortalSession).where(PortalSession.user_id == user_id).returning(PortalSession.id)
    ).all()
    return len(ended)


def purge_expired(
    session: Session, *, idle: timedelta, absolute: timedelta, now: datetime | None = None
) -> int:
    """Delete the rows of sessions that have expired without a request noticing."""
    now = now or utcnow()
    ended = session.scalars(
        delete(PortalSession)
        .where(
            or_(
                PortalSession.last_seen_at < now - idle,
                PortalSession.created_at < now - absolute,
            )
        )
        .returning(PortalSession.id)
    ).all()
    return len(ended)
