"""Signing in with a local account (password, then TOTP where required) and signing out.

Local accounts are for break-glass use and small sites; most users come through SSO
(``appliance.portal.sso``). Every outcome is audited in the transaction that records it:
a failure with its reason (the page shows one message for all of them), a lockout, an
enrolment, a login, a logout.

Failed sign-ins are throttled per account and per address, or lock the account
(``appliance.auth.throttle``; the settings ``login_throttle`` and the Settings page). An
unknown name, a wrong password, an inactive, locked or backing-off account and a
throttled address get the same answer after the same password-hash work.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from appliance.audit.events import AuditAction, record
from appliance.auth import sessions, throttle
from appliance.auth import totp as codes
from appliance.auth.access import login_required, public
from appliance.auth.sealing import seal, unseal
from appliance.auth.throttle import LoginPolicy
from appliance.auth.users import note_second_factor_failure, password_login
from appliance.models import User, utcnow
from appliance.portal import site_settings, sso
from appliance.portal.auth import (
    INVALID_LOGIN,
    MFA_ENROL,
    MFA_NOT_REQUIRED,
    MFA_TOTP,
    TOKEN_KEY,
    current_session,
    current_user,
    end_previous_session,
    end_this_session,
    safe_next,
    signed_in_user,
    start_session,
)
from appliance.portal.context import db_session, portal_services, request_context

bp = Blueprint("auth", __name__)

PENDING_TTL_S = 300  # between a correct password and its TOTP code
INVALID_CODE = "That code is not valid. Codes change every 30 seconds; try the current one."


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=128)])
    # The upper bound keeps a hostile password from making argon2 work for long.
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField(
        "Six-digit code",
        validators=[DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="Six digits.")],
    )


def _roles(user: User) -> str:
    return ",".join(user.role_names)[:255]


def login_policy() -> LoginPolicy:
    """How failed sign-ins are answered: the Settings page's numbers, the settings' mode."""
    page = site_settings.load(db_session())
    settings = portal_services().settings
    return LoginPolicy(
        mode=settings.login_throttle,
        threshold=page.lockout_threshold,
        lockout=page.lockout,
        backoff_max_s=settings.login_backoff_max_s,
        source_threshold=settings.login_source_threshold,
        source_backoff_max_s=settings.login_source_backoff_max_s,
    )


def _sso_offered() -> tuple[bool, str]:
    settings = site_settings.load(db_session())
    return settings.sso_enabled, settings.sso_display_name


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> BaseResponse | str:
    next_url = safe_next(request.args.get("next"))
    token = session.get(TOKEN_KEY)
    if token and request.method == "GET" and sessions.find(db_session(), str(token)):
        return redirect(next_url)  # signed in already (or expired: the next page says so)
    form = LoginForm()
    if form.validate_on_submit():
        response = _password_step(str(form.username.data), str(form.password.data), next_url)
        if response is not None:
            return response
        form.form_errors.append(INVALID_LOGIN)
    sso_enabled, sso_name = _sso_offered()
    return render_template(
        "login.html",
        form=form,
        next=request.args.get("next"),
        sso_enabled=sso_enabled,
        sso_name=sso_name,
        sso_logout_url=session.pop("sso_logout_url", None),
    )


def _password_step(username: str, password: str, next_url: str) -> BaseResponse | None:
    """Check the password; on success start the session or ask for the TOTP code."""
    db = db_session()
    attempt = password_login(
        db, username, password, policy=login_policy(), source=request.remote_addr
    )
    if not attempt.ok or attempt.user is None:
        _failed(
            username,
            str(attempt.reason),
            locked_now=attempt.locked_now,
            backoff_s=attempt.wait_s,
            source_backoff_s=attempt.source_wait_s,
        )
        return None
    user = attempt.user
    throttle.purge_sources(db, throttle.clock())
    if codes.is_enrolled(user):
        end_previous_session()
        db.commit()
        session.clear()
        session.update(pre_uid=user.id, pre_at=int(time.time()), pre_next=next_url)
        return redirect(url_for("auth.totp"))
    required = portal_services().rbac.totp_required(user.role_names)
    _succeeded(user, second_factor="enrolment_required" if required else "none")
    start_session(user, source="local", mfa=MFA_ENROL if required else MFA_NOT_REQUIRED)
    if required:
        session["enrol_next"] = next_url
        flash("Your roles require a second factor: set up an authenticator app now.", "info")
        return redirect(url_for("auth.totp_enrol"))
    return redirect(next_url)


def _failed(
    actor: str, reason: str, *, locked_now: bool, backoff_s: int = 0, source_backoff_s: int = 0
) -> None:
    db = db_session()
    waits: dict[str, Any] = {"backoff_s": backoff_s} if backoff_s and not locked_now else {}
    if source_backoff_s:
        waits["source_backoff_s"] = source_backoff_s
    record(
        db,
        AuditAction.LOGIN_FAILED,
        outcome="failure",
        actor=actor[:128],
        context=request_context(),
        reason=reason,
        **waits,
    )
    if locked_now:
        minutes = site_settings.load(db).lockout_minutes
        record(
            db,
            AuditAction.LOGIN_LOCKED,
            actor=actor[:128],
            target=actor[:255],
            context=request_context(),
            locked_minutes=minutes,
        )
    db.commit()


def _succeeded(user: User, *, second_factor: str) -> None:
    db = db_session()
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = utcnow()
    record(
        db,
        AuditAction.LOGIN,
        actor=user.username,
        actor_roles=_roles(user),
        context=request_context(),
        method="password",
        second_factor=second_factor,
    )
    db.commit()


@bp.route("/login/totp", methods=["GET", "POST"])
@public
def totp() -> BaseResponse | str:
    """The second step of a local login: the code of the user's authenticator."""
    user_id, started = session.get("pre_uid"), int(session.get("pre_at", 0))
    if user_id is None or time.time() - started > PENDING_TTL_S:
        session.pop("pre_uid", None)
        flash("Sign in again: the code was not entered in time.", "info")
        return redirect(url_for("auth.login"))
    db = db_session()
    user = db.get(User, user_id)
    form = CodeForm()
    if user is None or not user.is_active:
        session.clear()
        return redirect(url_for("auth.login"))
    if form.validate_on_submit():
        policy = login_policy()
        now = throttle.clock()
        db.refresh(user, with_for_update=True)  # one code at a time: no parallel guesses
        # Backing off (or locked): the code is not even looked at.
        locked = throttle.account_blocked(user, now)
        key = portal_services().derived_key(codes.KEY_PURPOSE)
        if not locked and codes.verify(user, str(form.code.data), key):
            next_url = safe_next(session.get("pre_next"))
            _succeeded(user, second_factor="totp")
            start_session(user, source="local", mfa=MFA_TOTP)
            return redirect(next_url)
        locked_now, wait = (
            (False, 0) if locked else note_second_factor_failure(user, policy=policy, now=now)
        )
        hard_lock = policy.mode == throttle.LOCK
        reason = ("locked" if hard_lock else "throttled") if locked else "invalid_totp"
        _failed(user.username, reason, locked_now=locked_now, backoff_s=wait)
        if hard_lock and (locked or locked_now):
            session.clear()
            flash(INVALID_LOGIN, "error")
            return redirect(url_for("auth.login"))
        form.code.errors = [INVALID_CODE]
    return render_template("totp.html", form=form)


@bp.route("/account/totp", methods=["GET", "POST"])
@login_required
def totp_enrol() -> BaseResponse | str:
    """Enrol an authenticator app: scan or type the secret, then prove it with a code."""
    user = signed_in_user()
    if codes.is_enrolled(user):
        return render_template("totp_enrol.html", user=user, enrolled=True)
    key = portal_services().derived_key(codes.KEY_PURPOSE)
    binding = f"enrol:{user.id}:{session.get(TOKEN_KEY)}"
    form = CodeForm()
    sealed = session.get("totp_pending")
    secret = unseal(key, sealed, binding) if sealed else None
    if form.validate_on_submit() and secret is not None:
        if codes.enrol(user, secret, str(form.code.data), key):
            db = db_session()
            record(
                db,
                AuditAction.TOTP_ENROL,
                actor=user.username,
                actor_roles=_roles(user),
                target=user.username,
                context=request_context(),
            )
            db.commit()
            next_url = safe_next(session.get("enrol_next"))
            start_session(user, source="local", mfa=MFA_TOTP)  # a new session id, too
            flash("Your authenticator is set up. It will be asked for at every sign-in.", "ok")
            return redirect(next_url)
        form.code.errors = [INVALID_CODE]
    if secret is None:
        secret = codes.new_secret()
        session["totp_pending"] = seal(key, secret, binding)
    return render_template(
        "totp_enrol.html",
        user=user,
        enrolled=False,
        form=form,
        secret=secret,
        secret_groups=[secret[i : i + 4] for i in range(0, len(secret), 4)],
        uri=codes.provisioning_uri(secret, user.username),
        required=getattr(current_session(), "mfa", None) == MFA_ENROL,
    )


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> BaseResponse:
    user = current_user()
    row = current_session()
    assert user is not None and row is not None
    db = db_session()
    record(
        db,
        AuditAction.LOGOUT,
        actor=user.username,
        actor_roles=_roles(user),
        context=request_context(),
        session_id=row.id,
    )
    idp_logout = sso.logout_url(row.id_token) if row.auth_source == "sso" else None
    end_this_session()
    db.commit()
    if idp_logout:
        session["sso_logout_url"] = idp_logout
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))
