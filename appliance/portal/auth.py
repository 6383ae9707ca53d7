"""Portal sessions: local login and logout, idle expiry and the access check on every view.

Every view declares who may see it with exactly one of :func:`public`,
:func:`login_required` or :func:`require`. A hook that runs before every request
enforces the declaration (fail closed): unauthenticated visitors go to the login page,
a view that declares nothing answers 403.

The session is Flask's signed cookie. It holds the user id, a random session id that is
renewed at every login, the login time and the time of the last request.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from appliance.audit.events import AuditAction, record
from appliance.auth.rbac import Permission
from appliance.auth.users import check_login
from appliance.errors import Forbidden
from appliance.models import User
from appliance.portal.app import db_session, portal_services, request_context

F = TypeVar("F", bound=Callable[..., Any])
Access = Permission | Literal["public", "login"]
ACCESS_ATTR = "portal_access"
INVALID_LOGIN = "Invalid user name or password."

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=128)])
    # The upper bound keeps a hostile password from making argon2 work for long.
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


# Access declarations ---------------------------------------------------------------


def public(view: F) -> F:
    """Anyone may call this view, signed in or not."""
    view.__dict__[ACCESS_ATTR] = "public"
    return view


def login_required(view: F) -> F:
    """Any signed-in user may call this view."""
    return _guarded(view, "login")


def require(permission: Permission) -> Callable[[F], F]:
    """A signed-in user whose roles grant ``permission`` may call this view; else 403."""

    def decorator(view: F) -> F:
        return _guarded(view, permission)

    return decorator


def _guarded(view: F, access: Access) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None:
            return _to_login()
        if isinstance(access, Permission) and not has_permission(user, access):
            raise Forbidden(f"Your roles do not grant the permission {access.value}.")
        return view(*args, **kwargs)

    wrapped.__dict__[ACCESS_ATTR] = access
    return cast(F, wrapped)


def access_of(view: Callable[..., Any] | None) -> Access | None:
    """What a view declared with the decorators above (None: nothing)."""
    return getattr(view, ACCESS_ATTR, None)


def current_user() -> User | None:
    """The signed-in, active user of this request, or None."""
    user: User | None = g.get("user")
    return user


def has_permission(user: User, permission: Permission) -> bool:
    return portal_services().rbac.allows(user.role_names, permission)


# Hooks -----------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_authenticate)
    app.context_processor(lambda: {"current_user": current_user()})


def _authenticate() -> BaseResponse | None:
    """Load the session's user, end idle or stale sessions, enforce the view's access."""
    g.user = None
    view = current_app.view_functions.get(request.endpoint or "")
    access = "public" if request.endpoint == "static" else access_of(view)
    if access == "public":
        return None  # public pages neither read nor refresh the session
    g.user = _session_user()
    if g.user is None:
        return _to_login()
    if view is not None and access is None:
        raise Forbidden("This page declares no permission, so nobody may open it.")
    return None  # with no view, Flask answers 404 or 405 next


def _session_user() -> User | None:
    user_id = session.get("uid")
    if user_id is None:
        return None
    idle_limit = current_app.permanent_session_lifetime.total_seconds()
    now = int(time.time())
    if now - int(session.get("t", 0)) > idle_limit:
        session.clear()
        flash("Your session expired. Please sign in again.", "info")
        return None
    user = db_session().get(User, user_id)
    if user is None or not user.is_active:
        session.clear()
        flash("Your session has ended. Please sign in again.", "info")
        return None
    session["t"] = now
    return user


def _to_login() -> BaseResponse:
    target = None
    if request.method == "GET":
        query = request.query_string.decode("latin-1")
        target = request.path + (f"?{query}" if query else "")
    return redirect(url_for("auth.login", next=target if target != "/" else None))


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


# Routes ----------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> BaseResponse | str:
    next_url = safe_next(request.args.get("next"))
    if session.get("uid") is not None and request.method == "GET":
        return redirect(next_url)  # signed in already (or expired: the next page says so)
    form = LoginForm()
    if form.validate_on_submit():
        user = _check_credentials(str(form.username.data), str(form.password.data))
        if user is not None:
            _start_session(user)
            return redirect(next_url)
        form.form_errors.append(INVALID_LOGIN)
    return render_template("login.html", form=form, next=request.args.get("next"))


def _check_credentials(username: str, password: str) -> User | None:
    """Check the password and record the outcome in the same transaction."""
    db = db_session()
    user = check_login(db, username, password)
    if user is None:
        record(
            db,
            AuditAction.LOGIN_FAILED,
            outcome="failure",
            actor=username[:128],
            context=request_context(),
            reason="invalid_credentials",
        )
    else:
        record(
            db,
            AuditAction.LOGIN,
            actor=user.username,
            actor_roles=",".join(user.role_names)[:255],
            context=request_context(),
        )
    db.commit()
    return user


def _start_session(user: User) -> None:
    # A new session for a new identity: nothing from before the login survives
    # (a planted session id, an old CSRF token), which prevents session fixation.
    session.clear()
    session.permanent = True
    now = int(time.time())
    session.update(uid=user.id, sid=secrets.token_urlsafe(16), auth_at=now, t=now)
    g.user = user


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> BaseResponse:
    user = current_user()
    assert user is not None
    db = db_session()
    record(
        db,
        AuditAction.LOGOUT,
        actor=user.username,
        actor_roles=",".join(user.role_names)[:255],
        context=request_context(),
    )
    db.commit()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))
