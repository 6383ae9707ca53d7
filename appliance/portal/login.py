"""Signing in with a local account (password, then TOTP where required) and signing out.

Local accounts are for break-glass use and small sites; most users come through SSO
(``appliance.portal.sso``). Every outcome is audited in the transaction that records it:
a failure with its reason (the page shows one message for all of them), a lockout, an
enrolment, a login, a logout.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from appliance.audit.events import AuditAction, record
from appliance.auth import totp as codes
from appliance.auth.access import login_required, public
from appliance.auth.sealing import seal, unseal
from appliance.auth.users import note_second_factor_failure, password_login
from appliance.models import User, utcnow
from appliance.portal import site_settings, sso
from appliance.portal.auth import (
    INVALID_LOGIN,
    MFA_ENROL,
    MFA_NOT_REQUIRED,
    MFA_TOTP,
    current_user,
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


def _sso_offered() -> tuple[bool, str]:
    settings = site_settings.load(db_session())
    return settings.sso_enabled, settings.sso_display_name


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> BaseResponse | str:
    next_url = safe_next(request.args.get("next"))
    if session.get("uid") is not None and request.method == "GET":
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
    settings = site_settings.load(db)
    attempt = password_login(
        db,
        username,
        password,
        max_failures=settings.lockout_threshold,
        lockout=settings.lockout,
    )
    if not attempt.ok or attempt.user is None:
        _failed(username, str(attempt.reason), locked_now=attempt.locked_now)
        return None
    user = attempt.user
    if codes.is_enrolled(user):
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


def _failed(actor: str, reason: str, *, locked_now: bool) -> None:
    db = db_session()
    record(
        db,
        AuditAction.LOGIN_FAILED,
        outcome="failure",
        actor=actor[:128],
        context=request_context(),
        reason=reason,
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
        settings = site_settings.load(db)
        locked = user.locked_until is not None and user.locked_until > utcnow()
        key = portal_services().derived_key(codes.KEY_PURPOSE)
        if not locked and codes.verify(user, str(form.code.data), key):
            next_url = safe_next(session.get("pre_next"))
            _succeeded(user, second_factor="totp")
            start_session(user, source="local", mfa=MFA_TOTP)
            return redirect(next_url)
        locked_now = not locked and note_second_factor_failure(
            user, max_failures=settings.lockout_threshold, lockout=settings.lockout
        )
        _failed(user.username, "locked" if locked else "invalid_totp", locked_now=locked_now)
        if locked or locked_now:
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
    binding = f"enrol:{user.id}:{session.get('sid')}"
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
        required=session.get("mfa") == MFA_ENROL,
    )


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
        actor_roles=_roles(user),
        context=request_context(),
    )
    db.commit()
    idp_logout = sso.logout_url(session.get("idt")) if session.get("src") == "sso" else None
    session.clear()
    if idp_logout:
        session["sso_logout_url"] = idp_logout
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))
