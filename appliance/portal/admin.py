"""Users and role mappings: local accounts, their roles, deactivation, resets.

SSO accounts get their roles from the IdP's groups through the policy's mapping (shown
on the role mappings page, changed in the RBAC policy); local accounts get them here.
Destructive actions ask for confirmation first; every change is audited, and an admin
cannot lock themself out (deactivate themself or drop their own user management).
A deactivation, a password reset and a TOTP reset end the user's sessions at once; the
user's page lists their sessions, ends one, or signs them out everywhere.
"""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from appliance.audit.events import AuditAction
from appliance.auth import sessions, throttle, totp
from appliance.auth.access import require
from appliance.auth.passwords import generate_password
from appliance.auth.rbac import Permission
from appliance.auth.users import (
    USERNAME_RE,
    activate,
    create_user,
    deactivate,
    password_problem,
    set_password,
    set_roles,
)
from appliance.errors import NotFound
from appliance.models import User, utcnow
from appliance.portal.auth import (
    current_session,
    end_session,
    end_sessions,
    signed_in_user,
    user_sessions,
)
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit, paginate

bp = Blueprint("users", __name__)
READ = Permission.ADMIN_USERS_READ
WRITE = Permission.ADMIN_USERS_WRITE


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    from appliance.portal import settings_views

    settings_views.init_app(app)


class RolesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _role_choices() -> list[tuple[str, str]]:
    return [
        (name, f"{name}: {grant.description}")
        for name, grant in sorted(portal_services().rbac.roles.items())
    ]


class UserForm(FlaskForm):
    username = StringField(
        "User name",
        validators=[
            DataRequired(),
            Length(max=128),
            Regexp(USERNAME_RE, message="Letters, digits, '.', '_', '@' or '-'."),
        ],
    )
    display_name = StringField("Display name", validators=[Length(max=255)])
    roles = RolesField("Roles", validators=[DataRequired(message="Choose at least one role.")])


class RolesForm(FlaskForm):
    roles = RolesField("Roles")


class ConfirmForm(FlaskForm):
    """A destructive action's confirmation: just the CSRF token."""


@bp.get("/users")
@require(READ)
def index() -> str:
    form = UserForm()
    form.roles.choices = _role_choices()
    return _render_index(form)


def _render_index(form: UserForm) -> str:
    query = select(User).order_by(User.username)
    search = request.args.get("q", "").strip()[:128]
    if search:
        query = query.where(User.username.contains(search, autoescape=True))
    return render_template(
        "users.html", page=paginate(db_session(), query), form=form, search=search, now=utcnow()
    )


@bp.post("/users")
@require(WRITE)
def create() -> str:
    form = UserForm()
    form.roles.choices = _role_choices()
    if not form.validate_on_submit():
        return _render_index(form)
    db = db_session()
    username = str(form.username.data)
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        form.username.errors = [f"A user named {username!r} already exists."]
        return _render_index(form)
    roles = list(form.roles.data or [])
    user, password = create_user(
        db, username, roles, display_name=str(form.display_name.data or "")
    )
    audit(AuditAction.USER_CREATE, target=username, roles=roles, source="portal")
    db.commit()
    return render_template(
        "user_created.html",
        user=user,
        password=password,
        totp_required=portal_services().rbac.totp_required(roles),
    )


def _user(user_id: int) -> User:
    user = db_session().get(User, user_id)
    if user is None:
        raise NotFound("There is no such user.")
    return user


@bp.get("/users/<int:user_id>")
@require(READ)
def detail(user_id: int) -> str:
    user = _user(user_id)
    form = RolesForm(data={"roles": user.role_names})
    form.roles.choices = _role_choices()
    return _render_detail(user, form)


def _render_detail(user: User, form: RolesForm) -> str:
    rbac = portal_services().rbac
    return render_template(
        "user_detail.html",
        user=user,
        form=form,
        confirm=ConfirmForm(),
        totp_enrolled=totp.is_enrolled(user),
        totp_required=rbac.totp_required(user.role_names),
        permissions=sorted(p.value for p in rbac.permissions_of(user.role_names)),
        is_self=user.id == signed_in_user().id,
        sessions=user_sessions(user),
        current_session_id=getattr(current_session(), "id", None),
    )


@bp.post("/users/<int:user_id>/roles")
@require(WRITE)
def roles(user_id: int) -> BaseResponse | str:
    user = _user(user_id)
    form = RolesForm()
    form.roles.choices = _role_choices()
    if not form.validate_on_submit():
        return _render_detail(user, form)
    wanted = sorted(set(form.roles.data or []))
    if user.sso_subject is not None:
        form.roles.errors = ["SSO users get their roles from their groups (role mappings)."]
        return _render_detail(user, form)
    if user.id == signed_in_user().id and not portal_services().rbac.allows(wanted, WRITE):
        form.roles.errors = ["You cannot take away your own user management."]
        return _render_detail(user, form)
    before = user.role_names
    db = db_session()
    if set_roles(db, user, wanted):
        audit(AuditAction.USER_UPDATE, target=user.username, roles_before=before, roles=wanted)
        db.commit()
        flash(f"Roles of {user.username}: {', '.join(wanted) or 'none'}.", "ok")
    else:
        flash("Nothing changed.", "info")
    return redirect(url_for("users.detail", user_id=user.id))


# Actions: GET shows the confirmation, POST does it --------------------------------

ACTIONS = {
    "deactivate": "Deactivate {name}? Their sessions end and API keys stop working at once.",
    "activate": "Activate {name} again?",
    "unlock": "Unlock {name} (clear failed sign-ins and the lockout)?",
    "reset-totp": "Reset the authenticator of {name}? Their sessions end; they enrol a new one "
    "at next sign-in.",
    "reset-password": "Set a new generated password for {name}? The old one stops working "
    "and their sessions end.",
    "sign-out": "Sign {name} out everywhere? Every session of theirs ends at once.",
}


@bp.route(
    "/users/<int:user_id>/<any(deactivate, activate, unlock, 'sign-out'):action>",
    methods=["GET", "POST"],
)
@require(WRITE)
def account_action(user_id: int, action: str) -> BaseResponse | str:
    user = _user(user_id)
    if request.method == "GET":
        return _confirm(user, action)
    if action == "deactivate":
        if user.id == signed_in_user().id:
            flash("You cannot deactivate your own account.", "error")
            return redirect(url_for("users.detail", user_id=user.id))
        if deactivate(user, "admin"):
            audit(AuditAction.USER_DEACTIVATE, target=user.username, reason="admin")
            end_sessions(user, sessions.DEACTIVATED)
    elif action == "sign-out":
        end_sessions(user, sessions.SIGN_OUT_EVERYWHERE)
    elif action == "activate":
        if activate(user):
            audit(AuditAction.USER_ACTIVATE, target=user.username)
    else:
        throttle.unlock(db_session(), user)
        audit(AuditAction.USER_UNLOCK, target=user.username)
    db_session().commit()
    flash(f"Done: {action} {user.username}.", "ok")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.route(
    "/users/<int:user_id>/<any('reset-totp', 'reset-password'):action>", methods=["GET", "POST"]
)
@require(WRITE)
def credential_reset(user_id: int, action: str) -> BaseResponse | str:
    user = _user(user_id)
    if user.sso_subject is not None:
        flash("SSO users sign in at their identity provider.", "error")
        return redirect(url_for("users.detail", user_id=user.id))
    if request.method == "GET":
        return _confirm(user, action)
    db = db_session()
    if action == "reset-totp":
        totp.reset(user)
        audit(AuditAction.TOTP_RESET, target=user.username)
        end_sessions(user, sessions.TOTP_RESET)
        db.commit()
        flash(f"The authenticator of {user.username} is reset.", "ok")
        return redirect(url_for("users.detail", user_id=user.id))
    password = generate_password()
    while password_problem(password, user.username):
        password = generate_password()
    set_password(user, password)
    audit(AuditAction.PASSWORD_CHANGE, target=user.username, by_admin=True)
    end_sessions(user, sessions.PASSWORD_RESET)
    db.commit()
    return render_template("user_created.html", user=user, password=password, reset=True)


def _confirm(user: User, action: str) -> str:
    return render_template(
        "confirm.html",
        title=action.replace("-", " ").capitalize(),
        question=ACTIONS[action].format(name=user.username),
        action_url=request.path,
        cancel_url=url_for("users.detail", user_id=user.id),
        button=action.replace("-", " ").capitalize(),
        destructive=action in {"deactivate", "reset-totp", "reset-password", "sign-out"},
        form=ConfirmForm(),
    )


@bp.post("/users/<int:user_id>/sessions/<int:session_id>/end")
@require(WRITE)
def end_user_session(user_id: int, session_id: int) -> BaseResponse:
    """End one session of a user (the list on their page)."""
    user = _user(user_id)
    if end_session(user, session_id, sessions.ENDED_BY_ADMIN):
        db_session().commit()
        flash(f"That session of {user.username} has ended.", "ok")
    else:
        flash("That session had ended already.", "info")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.get("/role-mappings")
@require(READ)
def mappings() -> str:
    rbac = portal_services().rbac
    sso_users = paginate(
        db_session(), select(User).where(User.sso_subject.is_not(None)).order_by(User.username)
    )
    return render_template("mappings.html", sso=rbac.sso, roles=rbac.roles, page=sso_users)
