"""API keys: list, create (the key is shown once), revoke after a confirmation.

Admins (``admin:keys:*``) see and manage every key and create keys for any user;
developers (``keys:own:*``) only their own. Every change is audited with the key's
public id, never its secret.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.api_keys import create_api_key
from appliance.auth.rbac import Permission
from appliance.errors import NotFound
from appliance.models import ApiKey, User, utcnow
from appliance.portal.auth import has_permission, signed_in_user
from appliance.portal.context import db_session
from appliance.portal.pages import audit, paginate

bp = Blueprint("keys", __name__)
READ = (Permission.ADMIN_KEYS_READ, Permission.KEYS_OWN_READ)
WRITE = (Permission.ADMIN_KEYS_WRITE, Permission.KEYS_OWN_WRITE)
GLOBS_RE = re.compile(r"^\s*[A-Za-z0-9*?._:/+-]+(\s*,\s*[A-Za-z0-9*?._:/+-]+)*\s*$")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class KeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=128)])
    owner = StringField("Owner (user name)", validators=[Optional(), Length(max=128)])
    models = StringField(
        "Models (globs, comma-separated)",
        default="*",
        validators=[
            DataRequired(),
            Length(max=255),
            Regexp(GLOBS_RE, message="Model names or globs such as deepseek-*, comma-separated."),
        ],
    )
    expires_days = IntegerField(
        "Expires after (days)",
        default=90,
        validators=[Optional(), NumberRange(min=1, max=3650)],
    )


def _sees_all() -> bool:
    return has_permission(signed_in_user(), Permission.ADMIN_KEYS_READ)


def _manages_all() -> bool:
    return has_permission(signed_in_user(), Permission.ADMIN_KEYS_WRITE)


@bp.get("/keys")
@require(*READ)
def index() -> str:
    return _render_index(KeyForm())


def _render_index(form: KeyForm, status: int = 200) -> str:
    user = signed_in_user()
    query = select(ApiKey).order_by(ApiKey.id.desc())
    if not _sees_all():
        query = query.where(ApiKey.user_id == user.id)
    state = request.args.get("state", "")
    now = utcnow()
    if state == "active":
        query = query.where(
            ApiKey.revoked_at.is_(None),
            (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
        )
    elif state == "revoked":
        query = query.where(ApiKey.revoked_at.is_not(None))
    return render_template(
        "keys.html",
        page=paginate(db_session(), query),
        form=form,
        state=state,
        now=now,
        sees_all=_sees_all(),
        manages_all=_manages_all(),
        can_write=any(has_permission(user, p) for p in WRITE),
    )


@bp.post("/keys")
@require(*WRITE)
def create() -> str:
    form = KeyForm()
    if not form.validate_on_submit():
        return _render_index(form)
    user = signed_in_user()
    db = db_session()
    owner = user
    wanted = (form.owner.data or "").strip()
    if wanted and wanted != user.username:
        if not _manages_all():
            form.owner.errors = ["You can only create keys for yourself."]
            return _render_index(form)
        found = db.scalar(select(User).where(User.username == wanted))
        if found is None or not found.is_active:
            form.owner.errors = [f"There is no active user named {wanted!r}."]
            return _render_index(form)
        owner = found
    models = ",".join(glob.strip() for glob in str(form.models.data).split(","))
    new = create_api_key(
        db, owner, str(form.name.data), models=models, expires_days=form.expires_days.data
    )
    audit(
        AuditAction.KEY_CREATE,
        target=new.key.prefix,
        owner=owner.username,
        models=models,
        expires_days=form.expires_days.data,
    )
    db.commit()
    return render_template("key_created.html", key=new.key, plaintext=new.plaintext)


def _key(key_id: int) -> ApiKey:
    key = db_session().get(ApiKey, key_id)
    if key is None or (not _manages_all() and key.user_id != signed_in_user().id):
        raise NotFound("There is no such API key.")
    return key


@bp.route("/keys/<int:key_id>/revoke", methods=["GET", "POST"])
@require(*WRITE)
def revoke(key_id: int) -> BaseResponse | str:
    key = _key(key_id)
    if key.revoked_at is not None:
        flash(f"The key {key.prefix} was already revoked.", "info")
        return redirect(url_for("keys.index"))
    if request.method == "GET":
        return render_template("key_revoke.html", key=key)
    key.revoked_at = utcnow()
    audit(AuditAction.KEY_REVOKE, target=key.prefix, owner=key.user.username)
    db_session().commit()
    flash(f"The key {key.prefix} ({key.name}) is revoked: it stops working at once.", "ok")
    return redirect(url_for("keys.index"))
