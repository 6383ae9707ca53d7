"""The Settings page: the SSO client, lockout and session lengths (audited, validated)."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, IntegerField, PasswordField, StringField
from wtforms.validators import InputRequired, Length, Optional

from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.rbac import Permission
from appliance.portal import site_settings
from appliance.portal.auth import signed_in_user
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit

bp = Blueprint("settings", __name__)
FIELDS = tuple(site_settings.PortalSettings.model_fields)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class SettingsForm(FlaskForm):
    sso_enabled = BooleanField("Offer single sign-on on the login page")
    sso_display_name = StringField("Button label", validators=[Length(max=64)])
    sso_issuer = StringField("Issuer URL", validators=[Length(max=255)])
    sso_client_id = StringField("Client id", validators=[Length(max=255)])
    sso_client_secret = PasswordField(
        "Client secret (leave empty to keep the current one)",
        validators=[Optional(), Length(max=512)],
    )
    sso_scopes = StringField("Scopes", validators=[Length(max=255)])
    lockout_threshold = IntegerField(
        "Failed sign-ins of an account before it backs off (or locks)", [InputRequired()]
    )
    lockout_minutes = IntegerField(
        "Lockout length (minutes; with login_throttle: lock)", [InputRequired()]
    )
    session_absolute_hours = IntegerField("Longest session (hours)", [InputRequired()])


def _render(form: SettingsForm) -> str:
    db = db_session()
    services = portal_services()
    return render_template(
        "settings.html",
        form=form,
        has_secret=site_settings.has_client_secret(db),
        idle_minutes=services.settings.session_idle_timeout_min,
        cookie_secure=services.settings.session_cookie_secure,
        login=services.settings,
        redirect_uri=url_for("sso.callback", _external=True),
        logout_uri=url_for("auth.login", _external=True),
        claim=services.rbac.sso.claim,
    )


@bp.get("/settings")
@require(Permission.ADMIN_SETTINGS_READ)
def index() -> str:
    current = site_settings.load(db_session())
    return _render(SettingsForm(data=current.model_dump()))


@bp.post("/settings")
@require(Permission.ADMIN_SETTINGS_WRITE)
def save() -> BaseResponse | str:
    form = SettingsForm()
    if not form.validate_on_submit():
        return _render(form)
    values = {name: getattr(form, name).data for name in FIELDS}
    values = {
        k: "" if v is None else v.strip() if isinstance(v, str) else v for k, v in values.items()
    }
    settings, errors = site_settings.validate(values)
    db = db_session()
    secret = (form.sso_client_secret.data or "").strip() or None
    if settings is not None and settings.sso_enabled:
        if not settings.sso_issuer:
            errors["sso_issuer"] = "Required to offer single sign-on."
        if not settings.sso_client_id:
            errors["sso_client_id"] = "Required to offer single sign-on."
        if not secret and not site_settings.has_client_secret(db):
            errors["sso_client_secret"] = "Required to offer single sign-on."  # noqa: S105
    if settings is None or errors:
        for name, message in errors.items():
            field = getattr(form, name, None)
            if field is not None:
                field.errors = [message[0].upper() + message[1:]]
        return _render(form)
    key = portal_services().derived_key(site_settings.KEY_PURPOSE)
    changed = site_settings.save(
        db, settings, actor=signed_in_user().username, key=key, new_client_secret=secret
    )
    if changed:
        audit(AuditAction.SETTINGS_CHANGE, target="portal", changed=changed)
        db.commit()
        flash(f"Settings saved ({', '.join(changed)}).", "ok")
    else:
        flash("Nothing changed.", "info")
    return redirect(url_for("settings.index"))
