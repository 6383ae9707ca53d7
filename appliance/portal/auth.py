"""Portal sessions and the one access check that runs before every view.

Every view declares who may call it with exactly one of the decorators
:func:`~appliance.auth.access.public`, :func:`~appliance.auth.access.login_required` or
:func:`~appliance.auth.access.require`, as the API's views do (declarations only, see
``appliance.auth.access``). The ``before_request`` hook installed here enforces them
for every request (fail closed): unauthenticated visitors go to the login page, a view
that declares nothing or a role that lacks the permission gets 403. CSRF is checked
after it, on every unsafe request, so a refusal never depends on the form's token.

Sessions live on the server (``appliance.auth.sessions``): Flask's signed cookie carries
only a random token, renewed at every sign-in (no session fixation); its row holds the
user, how they signed in, when (absolute limit), the last request (idle limit), address
and browser. Deleting the row ends the session at once, wherever its cookie was copied:
logout, a password change or reset, a TOTP reset, a deactivation, "sign out everywhere"
and an admin ending one session do so, and each ending is an audit event
(``auth.session.end`` with its reason; a logout is ``auth.logout``). Every request also
checks the row against the account, so a change made elsewhere (the CLI, the IdP's
groups) ends the session at its next request, audited there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from appliance.audit.events import AuditAction, record
from appliance.auth import access, sessions, totp
from appliance.auth.rbac import Permission
from appliance.errors import Forbidden
from appliance.models import PortalSession, User, utcnow
from appliance.portal import site_settings
from appliance.portal.context import UNSAFE_METHODS, db_session, portal_services, request_context

INVALID_LOGIN = "Invalid user name or password."

# Session "mfa" values: how the second factor stands for this session.
MFA_TOTP = "totp"  # a TOTP code was checked at login
MFA_NOT_REQUIRED = "none"  # the user's roles do not require one
MFA_ENROL = "enrol"  # required but not enrolled yet: only enrolment and logout are open
MFA_IDP = "idp"  # signed in through the enterprise IdP, which owns the second factor
# What a session that must enrol TOTP may still open.
ENROLMENT_ENDPOINTS = frozenset({"auth.totp_enrol", "auth.logout"})
# The cookie's one key: the session's token.
TOKEN_KEY = "sid"  # noqa: S105 (a key name)
ENDED = "Your session has ended. Please sign in again."


def current_user() -> User | None:
    """The signed-in, active user of this request, or None."""
    user: User | None = g.get("user")
    return user


def current_session() -> PortalSession | None:
    """The server-side session of this request (signed in), or None."""
    row: PortalSession | None = g.get("portal_session")
    return row


def signed_in_user() -> User:
    """The user of a view that declared a permission (the hook let it through)."""
    user = current_user()
    if user is None:  # pragma: no cover - the hook redirects before any such view
        raise Forbidden("Sign in first.")
    return user


def has_permission(user: User, permission: Permission) -> bool:
    return portal_services().rbac.allows(user.role_names, permission)


# Hooks -----------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    app.before_request(_authenticate)
    app.before_request(_check_csrf)
    app.context_processor(_template_globals)


def _template_globals() -> dict[str, Any]:
    user = current_user()
    return {
        "current_user": user,
        "can": (lambda permission: user is not None and has_permission(user, permission)),
        "Permission": Permission,
    }


def _authenticate() -> BaseResponse | None:
    """Load the session's user, end idle or stale sessions, enforce the view's access."""
    g.user = None
    declared = access.endpoint_access(current_app, request.endpoint)
    if declared is access.PUBLIC:
        return None  # public pages neither read nor refresh the session
    user = _session_user()
    if user is None:
        return _to_login()
    g.user = user
    row = current_session()
    if row is not None and row.mfa == MFA_ENROL and request.endpoint not in ENROLMENT_ENDPOINTS:
        return redirect(url_for("auth.totp_enrol"))
    if request.endpoint is None:
        return None  # Flask answers 404 or 405 next
    if declared is None:
        raise Forbidden("This page declares no permission, so nobody may open it.")
    if not access.allows(portal_services().rbac, user.role_names, declared):
        raise Forbidden(f"Your roles do not grant the permission {access.describe(declared)}.")
    return None


def _check_csrf() -> None:
    if request.method in UNSAFE_METHODS and request.endpoint is not None:
        current_app.extensions["csrf"].protect()


def _session_user() -> User | None:
    """The user of the cookie's live session; an ended, expired or stale one is ended."""
    token = session.get(TOKEN_KEY)
    if not token:
        if session.get("uid") is not None:
            session.clear()  # a cookie of the old cookie-only sessions
        return None
    db = db_session()
    row = sessions.find(db, str(token))
    if row is None:
        _end(ENDED)
        return None
    user = db.get(User, row.user_id)
    assert user is not None  # rows are deleted with their user
    now = utcnow()
    reason = sessions.expiry(row, idle=_idle_limit(), absolute=_absolute_limit(), now=now)
    message = ENDED
    if reason == sessions.IDLE:
        message = "Your session expired. Please sign in again."
    elif reason == sessions.ABSOLUTE:
        message = "Your session reached its maximum length. Please sign in again."
    elif not user.is_active:
        reason = sessions.DEACTIVATED
    elif (stale := _stale_credentials(row, user)) is not None:
        reason = stale
    elif row.mfa == MFA_NOT_REQUIRED and portal_services().rbac.totp_required(user.role_names):
        # Roles that need a second factor were granted during this session.
        reason = sessions.SECOND_FACTOR_REQUIRED
        message = "Your roles now require a second factor. Please sign in again."
    if reason is not None:
        _record_end(user, reason, count=1, actor=user, session_id=row.id)
        sessions.end(db, row)
        db.commit()
        _end(message)
        return None
    if sessions.touch(db, row, now):
        db.commit()
    g.portal_session = row
    return user


def _stale_credentials(row: PortalSession, user: User) -> str | None:
    """Why the credentials this session was opened with changed since, if they did.

    The portal ends the sessions where it changes them; this catches the other ways
    (``appliance user reset-totp``, a change straight in the database).
    """
    changed = user.password_changed_at
    if row.auth_source == "local" and changed is not None and changed > row.created_at:
        return sessions.PASSWORD_CHANGE
    if row.mfa == MFA_TOTP:
        enrolled_at = user.totp_enabled_at if totp.is_enrolled(user) else None
        if enrolled_at is None or enrolled_at > row.created_at:
            return sessions.TOTP_RESET
    return None


def _idle_limit() -> timedelta:
    return timedelta(seconds=current_app.permanent_session_lifetime.total_seconds())


def _absolute_limit() -> timedelta:
    return timedelta(seconds=site_settings.load(db_session()).session_absolute_s)


def _end(message: str) -> None:
    session.clear()
    flash(message, "info")


def _record_end(user: User, reason: str, *, count: int, actor: User | None, **details: Any) -> None:
    """One audit event for ``count`` sessions of ``user`` ending for ``reason``."""
    by = actor or user
    record(
        db_session(),
        AuditAction.SESSION_END,
        actor=by.username,
        actor_roles=",".join(by.role_names)[:255],
        target=user.username,
        context=request_context(),
        reason=reason,
        sessions=count,
        **details,
    )


def end_sessions(user: User, reason: str) -> int:
    """End every session of ``user`` at once, this one too if it is theirs; audited.

    The signed-in user is the actor; the caller commits with the change that caused it.
    """
    count = sessions.end_all(db_session(), user.id)
    _record_end(user, reason, count=count, actor=current_user())
    return count


def end_session(user: User, session_id: int, reason: str) -> bool:
    """End one session of ``user`` (by its row id); False if it had ended already."""
    db = db_session()
    row = db.get(PortalSession, session_id)
    if row is None or row.user_id != user.id:
        return False
    _record_end(user, reason, count=1, actor=current_user(), session_id=row.id)
    sessions.end(db, row)
    return True


def user_sessions(user: User) -> list[PortalSession]:
    """The live sessions of ``user`` (expired ones are left out), most recent first."""
    idle, absolute, now = _idle_limit(), _absolute_limit(), utcnow()
    return [
        row
        for row in sessions.of_user(db_session(), user.id)
        if sessions.expiry(row, idle=idle, absolute=absolute, now=now) is None
    ]


def _to_login() -> BaseResponse:
    target = None
    if request.method == "GET":
        query = request.query_string.decode("latin-1")
        target = request.path + (f"?{query}" if query else "")
    return redirect(url_for("auth.login", next=target if target != "/" else None))


def start_session(user: User, *, source: str, mfa: str, id_token: str | None = None) -> None:
    """A new session for a new identity (prevents session fixation).

    Nothing from before the login survives: a planted token, an old CSRF token, a
    half-finished login; this browser's previous session, if it was live, is ended.
    ``id_token`` (SSO) is kept on the server for the IdP's logout. Sessions that expired
    without coming back are deleted on the way (their expiry is no act: not audited).
    """
    db = db_session()
    end_previous_session()
    sessions.purge_expired(db, idle=_idle_limit(), absolute=_absolute_limit())
    row, token = sessions.create(
        db,
        user,
        auth_source=source,
        mfa=mfa,
        source_ip=request.remote_addr,
        user_agent=request.user_agent.string,
        id_token=id_token,
    )
    db.commit()
    session.clear()
    session.permanent = True
    session[TOKEN_KEY] = token
    g.user = user
    g.portal_session = row


def end_previous_session() -> None:
    """A new sign-in in this browser ends the session its cookie had, if live (audited)."""
    db = db_session()
    previous = sessions.find(db, str(session.get(TOKEN_KEY) or ""))
    if previous is None:
        return
    owner = db.get(User, previous.user_id)
    if owner is not None:
        _record_end(owner, sessions.RENEWED, count=1, actor=owner, session_id=previous.id)
    sessions.end(db, previous)


def end_this_session() -> None:
    """Sign this browser out (logout): its row is deleted, its cookie emptied."""
    row = current_session()
    if row is not None:
        sessions.end(db_session(), row)
        g.portal_session = None
    session.clear()


def safe_next(target: str | None) -> str:
    """``target`` if it is a local path on this site, else "/"."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
