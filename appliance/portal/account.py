"""The signed-in user's own account: roles and permissions, second factor, password."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from appliance.audit.events import AuditAction
from appliance.auth import totp
from appliance.auth.access import login_required
from appliance.auth.passwords import verify_password
from appliance.auth.users import password_problem, set_password
from appliance.portal.auth import signed_in_user
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit

bp = Blueprint("account", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


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
            set_password(user, str(form.new.data))
            audit(AuditAction.PASSWORD_CHANGE, target=user.username)
            db_session().commit()
            flash("Your password has been changed.", "ok")
            return redirect(url_for("account.account"))
    rbac = portal_services().rbac
    return render_template(
        "account.html",
        user=user,
        form=form,
        permissions=sorted(p.value for p in rbac.permissions_of(user.role_names)),
        totp_enrolled=totp.is_enrolled(user),
        totp_required=rbac.totp_required(user.role_names),
    )
