"""The signed-in user's own account: roles and permissions, second factor, password, sessions.

A password change ends every session of the account, this browser's included, which is
then signed in again under a new session id: a copied cookie of any of them opens nothing.
"Sign out everywhere" ends them all, this one too.
"""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from appliance.audit.events import AuditAction
from appliance.auth import sessions, totp
from appliance.auth.access import login_required
from appliance.auth.passwords import verify_password
from appliance.auth.users import password_problem, set_password
from appliance.portal.auth import (
    current_session,
    end_session,
    end_sessions,
    signed_in_user,
    start_session,
    user_sessions,
)
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit

bp = Blueprint("account", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class ConfirmForm(FlaskForm):
    """A session's end button: just the CSRF token (checked for every POST by auth's hook)."""


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new", message="The two passwords differ.")],
    )


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> BaseResponse | str:
    user = signed_in_user()
    form = PasswordForm()
    if user.password_hash is not None and form.validate_on_submit():
        problem = password_problem(str(form.new.data), user.username)
        if not verify_password(user.password_hash, str(form.current.data)):
            form.current.errors = ["This is not your current password."]
        elif problem:
            form.new.errors = [problem[0].upper() + problem[1:] + "."]
        else:
            this = current_session()
            assert this is not None
            auth_source, mfa = this.auth_source, this.mfa
            set_password(user, str(form.new.data))
            audit(AuditAction.PASSWORD_CHANGE, target=user.username)
            others = end_sessions(user, sessions.PASSWORD_CHANGE) - 1
            start_session(user, source=auth_source, mfa=mfa)  # commits; a new session id
            ended = f" {others} other session(s) ended." if others > 0 else ""
            flash(f"Your password has been changed.{ended}", "ok")
            return redirect(url_for("account.account"))
    rbac = portal_services().rbac
    return render_template(
        "account.html",
        user=user,
        form=form,
        permissions=sorted(p.value for p in rbac.permissions_of(user.role_names)),
        totp_enrolled=totp.is_enrolled(user),
        totp_required=rbac.totp_required(user.role_names),
        sessions=user_sessions(user),
        current_session_id=getattr(current_session(), "id", None),
        confirm=ConfirmForm(),
    )


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def end_one(session_id: int) -> BaseResponse:
    """End one of one's own sessions (another browser, or this one)."""
    user = signed_in_user()
    this = current_session()
    if end_session(user, session_id, sessions.ENDED_BY_USER):
        db_session().commit()
        if this is not None and this.id == session_id:
            session.clear()
            flash("You have signed out.", "info")
            return redirect(url_for("auth.login"))
        flash("That session has ended.", "ok")
    else:
        flash("That session had ended already.", "info")
    return redirect(url_for("account.account"))


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> BaseResponse:
    """End every session of one's account, this one included."""
    user = signed_in_user()
    count = end_sessions(user, sessions.SIGN_OUT_EVERYWHERE)
    db_session().commit()
    session.clear()
    flash(f"You have signed out everywhere ({count} session(s) ended).", "info")
    return redirect(url_for("auth.login"))
