"""Portal sessions and the one access check that runs before every view.

Every view declares who may call it with exactly one of the decorators
:func:`~appliance.auth.access.public`, :func:`~appliance.auth.access.login_required` or
:func:`~appliance.auth.access.require`, as the API's views do (declarations only, see
``appliance.auth.access``). The ``before_request`` hook installed here enforces them
for every request (fail closed): unauthenticated visitors go to the login page, a view
that declares nothing or a role that lacks the permission gets 403. CSRF is checked
after it, on every unsafe request, so a refusal never depends on the form's token.

The session is Flask's signed cookie: the user id, a random session id renewed at every
login (no session fixation), how the user signed in, the login time (absolute timeout)
and the time of the last request (idle timeout).
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from appliance.auth import access
from appliance.auth.rbac import Permission
from appliance.errors import Forbidden
from appliance.models import User
from appliance.portal import site_settings
from appliance.portal.context import UNSAFE_METHODS, db_session, portal_services

INVALID_LOGIN = "Invalid user name or password."

# Session "mfa" values: how the second factor stands for this session.
MFA_TOTP = "totp"  # a TOTP code was checked at login
MFA_NOT_REQUIRED = "none"  # the user's roles do not require one
MFA_ENROL = "enrol"  # required but not enrolled yet: only enrolment and logout are open
MFA_IDP = "idp"  # signed in through the enterprise IdP, which owns the second factor
# What a session that must enrol TOTP may still open.
ENROLMENT_ENDPOINTS = frozenset({"auth.totp_enrol", "auth.logout"})


def current_user() -> User | None:
    """The signed-in, active user of this request, or None."""
    user: User | None = g.get("user")
    return user


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
    if session.get("mfa") == MFA_ENROL and request.endpoint not in ENROLMENT_ENDPOINTS:
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
    user_id = session.get("uid")
    if user_id is None:
        return None
    idle_limit = current_app.permanent_session_lifetime.total_seconds()
    now = int(time.time())
    if now - int(session.get("t", 0)) > idle_limit:
        _end("Your session expired. Please sign in again.")
        return None
    db = db_session()
    if now - int(session.get("auth_at", 0)) > site_settings.load(db).session_absolute_s:
        _end("Your session reached its maximum length. Please sign in again.")
        return None
    user = db.get(User, user_id)
    if user is None or not user.is_active:
        _end("Your session has ended. Please sign in again.")
        return None
    if session.get("mfa") == MFA_NOT_REQUIRED and portal_services().rbac.totp_required(
        user.role_names
    ):
        # Roles that need a second factor were granted during this session.
        _end("Your roles now require a second factor. Please sign in again.")
        return None
    session["t"] = now
    return user


def _end(message: str) -> None:
    session.clear()
    flash(message, "info")


def _to_login() -> BaseResponse:
    target = None
    if request.method == "GET":
        query = request.query_string.decode("latin-1")
        target = request.path + (f"?{query}" if query else "")
    return redirect(url_for("auth.login", next=target if target != "/" else None))


def start_session(user: User, *, source: str, mfa: str, id_token: str | None = None) -> None:
    """A new session for a new identity (prevents session fixation).

    Nothing from before the login survives: a planted session id, an old CSRF token,
    a half-finished login. ``id_token`` (SSO) is kept for the IdP's logout.
    """
    session.clear()
    session.permanent = True
    now = int(time.time())
    session.update(uid=user.id, sid=secrets.token_urlsafe(16), auth_at=now, t=now)
    session.update(src=source, mfa=mfa)
    if id_token:
        session["idt"] = id_token
    g.user = user


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
