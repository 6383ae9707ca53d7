"""Policies: view and validate them, edit one with a diff first, try desensitization on text.

An edit is validated by the same loader that start-up uses (on a temporary copy), shown
as a diff, then written atomically into the appliance's policies directory (created
from the shipped files on the first edit) and put in force in this portal at once; every
other process (API workers, the Celery worker, beat) applies it within
``policy_check_interval_s`` (``appliance.policywatch``), as it does an edit made on disk.
The index shows the version in force in each live process. A save is refused if the file
changed since the diff was made. Every save is audited; a changed SSO group mapping is
applied to the SSO accounts at once and audited as such.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from appliance import untrusted
from appliance.audit.events import AuditAction, record
from appliance.auth import sso
from appliance.auth.access import require
from appliance.auth.rbac import Permission, RbacPolicy, load_rbac
from appliance.auth.users import sync_roles
from appliance.config import SHIPPED_POLICIES
from appliance.content.matcher import load_built
from appliance.errors import PolicyError
from appliance.finetune.policy import load_finetune_policy
from appliance.policywatch import BY_NAME, COMPANIONS, file_digest, live_processes, version_of
from appliance.portal.auth import signed_in_user
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit
from appliance.privacy.explain import explain
from appliance.privacy.policy import load_privacy_policy
from appliance.privacy.transform import Blocked, desensitize

bp = Blueprint("policies", __name__)
READ = Permission.ADMIN_POLICIES_READ
WRITE = Permission.ADMIN_POLICIES_WRITE
MAX_POLICY_BYTES = 256 * 1024
MAX_SAMPLE_CHARS = 10_000
LOADERS: dict[str, Callable[[Path], Any]] = {
    "rbac.yaml": load_rbac,
    "desensitization.yaml": load_privacy_policy,
    "finetune.yaml": load_finetune_policy,
    "content.yaml": load_built,
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class EditForm(FlaskForm):
    text = TextAreaField("Policy", validators=[DataRequired(), Length(max=MAX_POLICY_BYTES)])
    base = HiddenField()  # sha256 of the file the edit started from


class TryForm(FlaskForm):
    sample = TextAreaField("Sample text", validators=[DataRequired(), Length(max=MAX_SAMPLE_CHARS)])
    role = SelectField("As a caller with the role", validators=[Optional()])
    key_prefix = StringField("API key id (optional)", validators=[Optional(), Length(max=32)])


def _policies_dir() -> Path:
    return portal_services().settings.effective_policies_dir


def _path(name: str) -> Path:
    if name not in LOADERS:
        abort(404)
    return _policies_dir() / name


def _in_force() -> list[dict[str, Any]]:
    """The live processes and, per policy file, the version each has in force."""
    on_disk = {name: file_digest(_policies_dir() / name) for name in LOADERS}
    return [
        {
            "process": p,
            "files": [
                {
                    "name": name,
                    "version": version_of(p.versions[name]) if name in p.versions else "—",
                    "current": p.versions.get(name) == on_disk[name],
                    "error": p.errors.get(name, {}).get("error"),
                }
                for name in LOADERS
            ],
        }
        for p in live_processes(portal_services().db)
    ]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check(name: str, text: str) -> tuple[Any, str | None]:
    """Validate ``text`` as the policy ``name``: (the loaded policy, None) or (None, error)."""
    with tempfile.TemporaryDirectory(prefix="policy-check-") as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        _copy_companions(name, path)
        try:
            return LOADERS[name](path), None
        except PolicyError as exc:
            # Name the line, not the temporary path.
            return None, str(exc.message).replace(str(path), name)


def _copy_companions(name: str, checked: Path) -> None:
    """The files beside the policy that the edited text reads (content.yaml's term files),
    copied next to the copy being checked, so that it is checked with them."""
    companions = COMPANIONS.get(name)
    if companions is None:
        return
    directory = _policies_dir().resolve()
    for listed in companions(checked):
        try:
            relative = listed.relative_to(checked.parent)
        except ValueError:
            continue
        source, target = directory / relative, checked.parent / relative
        inside = source.resolve().is_relative_to(directory)
        if inside and source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@bp.get("/policies")
@require(READ)
def index() -> str:
    rows = []
    for name in LOADERS:
        path = _policies_dir() / name
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        _, error = check(name, text) if text else (None, "missing")
        rows.append({"name": name, "error": error, "size": len(text)})
    return render_template(
        "policies.html",
        rows=rows,
        directory=_policies_dir(),
        shipped=_policies_dir() == SHIPPED_POLICIES,
        try_form=_try_form(),
        result=None,
        in_force=_in_force(),
    )


@bp.get("/policies/<name>")
@require(READ)
def view(name: str) -> str:
    text = _path(name).read_text(encoding="utf-8")
    form = EditForm(data={"text": text, "base": _digest(text)})
    return render_template(
        "policy.html", name=name, text=text, form=form, error=check(name, text)[1]
    )


@bp.post("/policies/<name>/preview")
@require(WRITE)
def preview(name: str) -> str | tuple[str, int]:
    """Validate the edit and show its diff; a valid edit gets a confirmation to save."""
    current = _path(name).read_text(encoding="utf-8")
    form = EditForm()
    if not form.validate_on_submit():
        return render_template("policy.html", name=name, text=current, form=form, error=None)
    text = _normalise(str(form.text.data))
    refused = _refuse_too_deep(name, form, current, text)
    if refused is not None:
        return refused
    _, error = check(name, text)
    if error:
        form.text.errors = [error]
    diff = list(
        difflib.unified_diff(
            current.splitlines(),
            text.splitlines(),
            f"{name} (now)",
            f"{name} (edited)",
            lineterm="",
        )
    )
    return render_template(
        "policy_preview.html",
        name=name,
        form=form,
        diff=diff,
        error=error,
        text=text,
        base=form.base.data,
        stale=form.base.data != _digest(current),
    )


@bp.post("/policies/<name>")
@require(WRITE)
def save(name: str) -> BaseResponse | str | tuple[str, int]:
    path = _path(name)
    form = EditForm()
    if not form.validate_on_submit():
        return redirect(url_for("policies.view", name=name))
    current = path.read_text(encoding="utf-8")
    if form.base.data != _digest(current):
        flash("The policy changed since you opened it: review the new version first.", "error")
        return redirect(url_for("policies.view", name=name))
    text = _normalise(str(form.text.data))
    refused = _refuse_too_deep(name, form, current, text)
    if refused is not None:
        return refused
    loaded, error = check(name, text)
    if error:
        form.text.errors = [error]
        return render_template("policy.html", name=name, text=current, form=form, error=None)
    if text == current:
        flash("Nothing changed.", "info")
        return redirect(url_for("policies.view", name=name))
    path = _write(name, text)
    changes = _apply(name, loaded, _digest(text))
    audit(
        AuditAction.POLICY_CHANGE,
        target=name,
        sha256_before=_digest(current),
        sha256=_digest(text),
        path=str(path),
    )
    db_session().commit()
    interval = portal_services().settings.policy_check_interval_s
    flash(
        f"{name} saved, version {version_of(_digest(text))}, in force in the portal"
        + (f"; {changes}" if changes else "")
        + f". The API workers, the worker and beat apply it within {interval:g} s:"
        " the policies page shows the version in force in each.",
        "ok",
    )
    return redirect(url_for("policies.view", name=name))


def _refuse_too_deep(name: str, form: EditForm, current: str, text: str) -> tuple[str, int] | None:
    """An edit nested deeper than any policy is refused unread: the edit page, 400."""
    line = untrusted.yaml_depth_error(text)
    if line is None:
        return None
    form.text.errors = [f"{name}:{line}: nested deeper than {untrusted.MAX_DEPTH} levels."]
    return render_template("policy.html", name=name, text=current, form=form, error=None), 400


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n")
    return text if text.endswith("\n") else text + "\n"


def _write(name: str, text: str) -> Path:
    """Write atomically into the home's policies directory (seeded from the shipped files)."""
    settings = portal_services().settings
    directory = settings.policies_dir or settings.home / "policies"
    if not directory.is_dir():
        directory.mkdir(mode=0o750, parents=True)
        for shipped in SHIPPED_POLICIES.glob("*.yaml"):
            shutil.copy2(shipped, directory / shipped.name)
    target = directory / name
    write_atomic(target, text)
    return target


def write_atomic(target: Path, text: str) -> None:
    """``text`` into ``target`` (0640) whole or not at all: a temporary file beside it,
    synced, then renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _apply(name: str, loaded: Any, sha256: str) -> str:
    """Put the new policy in force in this process; re-map SSO accounts if the mapping
    changed (this portal's watch then sees the version already in force)."""
    services = portal_services()
    before = services.rbac
    if services.watch is not None:
        services.watch.adopt(name, loaded, sha256, actor=signed_in_user().username, run_hooks=False)
    else:
        setattr(services, BY_NAME[name].attribute, loaded)
    if not isinstance(loaded, RbacPolicy):
        return ""
    return rbac_changed(db_session(), name, before, loaded, audit)


def rbac_changed(
    session: Any, name: str, before: RbacPolicy, loaded: RbacPolicy, write: Callable[..., Any]
) -> str:
    """What a new rbac.yaml changes in the database: its roles exist, SSO accounts follow a
    changed group mapping (each change audited through ``write(action, **fields)``)."""
    sync_roles(session, loaded)
    if before.sso == loaded.sso:
        return ""
    changes = sso.resync(session, loaded)
    write(
        AuditAction.ROLE_MAPPING_CHANGE,
        target=name,
        claim=loaded.sso.claim,
        mappings={group: list(roles) for group, roles in loaded.sso.roles.items()},
        accounts_changed=len(changes),
    )
    for change in changes:
        action = AuditAction.USER_DEACTIVATE if change.deactivated else AuditAction.USER_UPDATE
        write(
            action,
            target=change.user.username,
            roles_before=change.roles_before,
            roles=change.roles,
            reason="sso_mapping",
        )
    deactivated = sum(c.deactivated for c in changes)
    return f"role mapping changed: {len(changes)} SSO account(s) updated, {deactivated} deactivated"


def policy_changed_on_disk(services: Any, name: str, before: Any, after: Any) -> None:
    """The portal's watch hook: an rbac.yaml edited on disk changes what a save would."""
    if name != "rbac.yaml":
        return
    with services.db.session() as session:

        def write(action: AuditAction, **fields: Any) -> None:
            record(session, action, actor="system", **fields)

        rbac_changed(session, name, before, after, write)


# Try it -----------------------------------------------------------------------------


def _try_form() -> TryForm:
    form = TryForm()
    form.role.choices = [("", "(no role override)")] + [
        (name, name) for name in sorted(portal_services().rbac.roles)
    ]
    return form


@bp.post("/policies/try")
@require(READ)
def try_it() -> str:
    """Desensitize sample text as the API would for a caller; nothing is stored or logged."""
    form = _try_form()
    result: dict[str, Any] | None = None
    if form.validate_on_submit():
        services = portal_services()
        policy = services.privacy
        roles = [form.role.data] if form.role.data else []
        actions = policy.actions_for(roles, (form.key_prefix.data or "").strip() or None)
        try:
            done = desensitize(
                str(form.sample.data),
                actions,
                hash_key=services.derived_key("privacy-hash"),
                find=policy.find,
            )
            result = {
                "text": done.text,
                "findings": [(a.finding.type, a.action) for a in done.applied],
                "blocked": None,
            }
        except Blocked as exc:
            result = {"text": None, "findings": [], "blocked": exc.kind}
        sample = str(form.sample.data)
        result["explained"] = [
            {**e.as_dict(), "value": sample[e.start : e.end]} for e in explain(policy, sample)
        ]
    rows = []
    for name in LOADERS:
        path = _policies_dir() / name
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        rows.append({"name": name, "error": check(name, text)[1] if text else "missing"})
    return render_template(
        "policies.html",
        rows=rows,
        directory=_policies_dir(),
        shipped=_policies_dir() == SHIPPED_POLICIES,
        try_form=form,
        result=result,
        in_force=_in_force(),
    )
