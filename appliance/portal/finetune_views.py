"""Fine-tunes: each fine-tuned alias (from policies/finetune.yaml) with its serving versions
and their traffic weights, its runs and datasets; a run's progress, loss curve, data and
gate reports. Operators (``admin:finetune:write``) upload datasets, start a run now, and
promote or roll back a serving version after a confirmation.

The work is the fine-tune modules' (``appliance.finetune``); this module only calls them.
``request_run``, ``promote`` and ``rollback`` record their own audit events; a dataset
import is recorded here, as the CLI does. Their errors become form errors or messages on
the page, and an import that fails writes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response as BaseResponse
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from appliance import policywatch, untrusted
from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.rbac import Permission
from appliance.errors import ApplianceError, InvalidRequest, NotFound
from appliance.finetune import datasets, rollout, runs, service
from appliance.finetune.policy import AliasPolicy
from appliance.models import FinetuneDataset, FinetuneLock, FinetuneRun
from appliance.models.finetune import RUN_ACTIVE, RUN_SERVING
from appliance.portal.auth import signed_in_user
from appliance.portal.context import db_session, portal_services
from appliance.portal.finetune_chart import loss_chart
from appliance.portal.pages import audit
from appliance.upstream.aliases import get_alias, target_key

bp = Blueprint("finetune", __name__)
READ = Permission.ADMIN_FINETUNE_READ
WRITE = Permission.ADMIN_FINETUNE_WRITE
RUNS_SHOWN = 50
# app.extensions keys: the Celery app that queues runs (built on first use) and, in
# tests, a replacement for the function that queues them.
CELERY_KEY = "appliance.finetune.celery"
ENQUEUE_KEY = "appliance.finetune.enqueue"
REFRESH_MS_KEY = "FINETUNE_REFRESH_MS"  # app.config: how often a run's page checks progress
DEFAULT_REFRESH_MS = 5000
_celery_lock = threading.Lock()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


# Forms ------------------------------------------------------------------------------


def _source_ok(_form: FlaskForm, field: StringField) -> None:
    try:
        datasets.check_source(str(field.data or ""))
    except InvalidRequest:
        raise ValidationError(
            "1-64 lower-case letters, digits, '.', '_', ':' or '-' (such as import or tickets)."
        ) from None


class UploadForm(FlaskForm):
    alias = SelectField("Alias", validators=[DataRequired()])
    source = StringField(
        "Source label",
        default="import",
        validators=[DataRequired(), Length(max=64), _source_ok],
    )
    file = FileField("JSONL file (one chat record a line)", validators=[FileRequired()])


class ActionForm(FlaskForm):
    """A button's form: just the CSRF token."""


def upload_limit() -> int:
    """The largest file the portal takes (its request size cap, less room for the form)."""
    return max(1024, portal_services().settings.max_body_bytes - 16 * 1024)


def _upload_form(*, blank: bool = False) -> UploadForm:
    """The upload form, filled from the request unless ``blank`` (a body not to be read)."""
    form = UploadForm(formdata=None) if blank else UploadForm()
    form.alias.choices = [(name, name) for name in sorted(portal_services().finetune.aliases)]
    return form


# What the pages show ----------------------------------------------------------------


@dataclass(frozen=True)
class TargetRow:
    key: str
    version: str
    adapter: str | None
    weight: int
    share: float  # % of the alias's traffic
    run: FinetuneRun | None  # the run behind this version, if any


@dataclass
class AliasRow:
    name: str
    policy: AliasPolicy | None  # None: no longer in finetune.yaml, but a version serves
    error: str | None  # the alias cannot be shown
    targets: list[TargetRow]
    runs: list[FinetuneRun]
    active: FinetuneRun | None
    lock: FinetuneLock | None
    datasets: list[FinetuneDataset]


def _alias_row(name: str, policy: AliasPolicy | None) -> AliasRow:
    db = db_session()
    recent = runs.list_runs(db, name, limit=RUNS_SHOWN)
    by_label = {run.label: run for run in recent}
    error, targets = None, []
    try:
        alias = get_alias(db, name)
    except NotFound:
        error = (
            f"There is no model alias named {name!r}: create it "
            "(appliance model alias add) or remove it from finetune.yaml."
        )
    else:
        total = sum(t.weight for t in alias.targets) or 1
        for t in alias.targets:
            run = by_label.get(t.version) if t.version else None
            if t.version and run is None and t.adapter:
                try:
                    run = runs.get_run(db, name, t.version)
                except NotFound:
                    run = None
            targets.append(
                TargetRow(
                    key=target_key(t),
                    version=t.version,
                    adapter=t.adapter,
                    weight=t.weight,
                    share=round(100 * t.weight / total, 1),
                    run=run,
                )
            )
    return AliasRow(
        name=name,
        policy=policy,
        error=error,
        targets=targets,
        runs=recent,
        active=runs.active_run(db, name),
        lock=runs.lock_of(db, name),
        datasets=datasets.list_datasets(db, name),
    )


def _render_index(upload_form: UploadForm | None = None, status: int = 200) -> tuple[str, int]:
    policy = portal_services().finetune
    rows = [_alias_row(name, entry) for name, entry in sorted(policy.aliases.items())]
    # An alias taken out of the policy while a version still serves or a run is active
    # stays here, so that it can still be promoted or rolled back.
    leftover = db_session().scalars(
        select(FinetuneRun.alias)
        .where(FinetuneRun.status.in_(RUN_SERVING + RUN_ACTIVE))
        .where(FinetuneRun.alias.not_in(list(policy.aliases) or [""]))
        .distinct()
        .order_by(FinetuneRun.alias)
    )
    rows += [_alias_row(name, None) for name in leftover]
    html = render_template(
        "finetune.html",
        rows=rows,
        upload_form=upload_form or _upload_form(blank=True),
        action_form=ActionForm(formdata=None),
        upload_limit=upload_limit(),
        active_states=RUN_ACTIVE,
        serving_states=RUN_SERVING,
    )
    return html, status


@bp.get("/finetune")
@require(READ)
def index() -> tuple[str, int]:
    return _render_index()


def _run(alias: str, version: str) -> FinetuneRun:
    return runs.get_run(db_session(), alias, version)


@bp.get("/finetune/<path:alias>/runs/<version>")
@require(READ)
def run_detail(alias: str, version: str) -> str:
    run = _run(alias, version)
    return render_template(
        "finetune_run.html",
        run=run,
        chart=loss_chart(run.losses),
        data=_data_report(run.data_report),
        gate=_gate_report(run.gate_report),
        active=run.status in RUN_ACTIVE,
        serving=run.status in RUN_SERVING,
        refresh_ms=int(current_app.config.get(REFRESH_MS_KEY, DEFAULT_REFRESH_MS)),
    )


@bp.get("/finetune/<path:alias>/runs/<version>/status")
@require(READ)
def run_status(alias: str, version: str) -> Response:
    """The run's progress as JSON: what its page polls while the run is active."""
    run = _run(alias, version)
    gate = run.gate_report or {}
    return jsonify(
        alias=run.alias,
        version=run.label,
        status=run.status,
        active=run.status in RUN_ACTIVE,
        step=run.step,
        total_steps=run.total_steps,
        loss=run.loss,
        eta_s=run.eta_s,
        reason=run.reason,
        gate_passed=gate.get("passed") if isinstance(gate, dict) else None,
        losses=len(run.losses or []),
    )


# Report layouts ---------------------------------------------------------------------

_DATA_COUNTS = (
    ("new", "New records since the promoted version"),
    ("replay", "Replayed earlier records"),
    ("kept", "Kept after the filters"),
    ("heldout", "Held out for the gate"),
    ("train", "Training mix (after source weights)"),
)


def _data_report(report: Any) -> dict[str, Any] | None:
    """The data report split for the page: counts, drops per filter, sources and weights."""
    if not isinstance(report, dict) or not report:
        return None
    counts = [(label, report[key]) for key, label in _DATA_COUNTS if key in report]
    dropped = report.get("dropped")
    sources = report.get("sources")
    weights = report.get("weights")
    known = {key for key, _ in _DATA_COUNTS} | {"dropped", "sources", "weights"}
    return {
        "counts": counts,
        "dropped": sorted(dropped.items()) if isinstance(dropped, dict) else [],
        "dropped_total": sum(v for v in dropped.values() if isinstance(v, int | float))
        if isinstance(dropped, dict)
        else 0,
        "sources": [
            (name, count, weights.get(name) if isinstance(weights, dict) else None)
            for name, count in sorted(sources.items())
        ]
        if isinstance(sources, dict)
        else [],
        "other": sorted((k, v) for k, v in report.items() if k not in known),
    }


def _gate_report(report: Any) -> dict[str, Any] | None:
    if not isinstance(report, dict) or not report:
        return None
    checks = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    return {"passed": report.get("passed"), "checks": checks}


# Actions ----------------------------------------------------------------------------


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> tuple[str, int]:
    """A file over the portal's cap: a form error on the page, nothing read or written."""
    form = _upload_form(blank=True)
    form.file.errors = [_too_large_message()]
    return _render_index(form, status=413)


def _too_large_message() -> str:
    mib = upload_limit() / 1_048_576
    return (
        f"The file is larger than the portal accepts ({mib:.1f} MiB): import it on the "
        "appliance with `appliance finetune dataset import`."
    )


@bp.post("/finetune/datasets")
@require(WRITE)
def upload() -> BaseResponse | tuple[str, int]:
    """Desensitize an uploaded JSONL file into the alias's next dataset version."""
    form = _upload_form()
    if not form.validate_on_submit():
        return _render_index(form)
    storage = form.file.data
    limit = upload_limit()
    raw = storage.read(limit + 1)
    if len(raw) > limit:
        form.file.errors = [_too_large_message()]
        return _render_index(form, status=413)
    alias, source = str(form.alias.data), str(form.source.data)
    filename = secure_filename(storage.filename or "") or "upload.jsonl"
    user = signed_in_user()
    db = db_session()
    try:
        get_alias(db, alias)
        report = _import(db, alias, filename, raw, source, user.username)
    except ApplianceError as exc:
        db.rollback()
        form.file.errors = [exc.message]
        # A file refused for its form (nesting too deep, not Unicode): 400, its error shown.
        return _render_index(form, status=400 if isinstance(exc, untrusted.Refused) else 200)
    audit(
        AuditAction.FINETUNE_DATASET_IMPORT,
        target=f"{alias}@dataset-{report.dataset.version}",
        source=source,
        sha256=report.dataset.sha256,
        records=report.kept,
        dropped_blocked=report.dropped_blocked,
        filename=report.dataset.filename,
    )
    db.commit()
    found = ", ".join(f"{k} {v}" for k, v in sorted(report.found.items())) or "none"
    flash(
        f"Imported {alias} dataset {report.dataset.version}: {report.kept} records, "
        f"{report.dropped_blocked} dropped (blocked personal data); desensitized: {found}.",
        "ok",
    )
    return redirect(url_for("finetune.index") + f"#alias-{alias}")


def _import(
    db: Any, alias: str, filename: str, raw: bytes, source: str, actor: str
) -> datasets.ImportReport:
    services = portal_services()
    return datasets.import_bytes(
        db,
        alias,
        raw,
        filename=filename,
        source=source,
        privacy=services.privacy,
        hash_key=services.derived_key("privacy-hash"),
        actor=actor,
    )


class QueueUnavailable(ApplianceError):
    status = 503
    type = "service_unavailable"
    code = "queue_unavailable"


def enqueue_function() -> Callable[[int], str | None]:
    """What sends a run to the ``train`` queue: a test's replacement, else Celery (the app
    is built once per portal app, on the first run requested)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    replacement: Callable[[int], str | None] | None = app.extensions.get(ENQUEUE_KEY)
    if replacement is not None:
        return replacement

    def send(run_id: int) -> str | None:
        from appliance.tasks import create_celery, enqueue_run

        with _celery_lock:
            celery = app.extensions.get(CELERY_KEY)
            if celery is None:
                settings = portal_services().settings
                celery = create_celery(settings)
                app.extensions[CELERY_KEY] = celery
        try:
            return enqueue_run(celery, run_id)
        except ApplianceError:
            raise
        except Exception as exc:  # the broker is down or refuses: say so, no traceback
            current_app.logger.warning("queueing fine-tune run %s failed: %r", run_id, exc)
            raise QueueUnavailable(
                f"the task queue is unreachable ({type(exc).__name__}); the run is marked failed"
            ) from None

    return send


def not_yet_in_force(name: str, kinds: tuple[str, ...]) -> str | None:
    """Why an action that the processes of ``kinds`` carry out must wait, or None: a
    version of ``name`` saved (or edited on disk) that one of them has not applied yet."""
    services = portal_services()
    behind = policywatch.pending(services.db, services.settings.effective_policies_dir, name, kinds)
    if not behind:
        return None
    where = ", ".join(sorted({p.kind for p in behind}))
    errors = [e["error"] for p in behind if (e := p.errors.get(name))]
    if errors:
        return f"{name} is not in force in the {where}: {errors[0]}"
    return (
        f"{name} was changed and is not yet in force in the {where}; "
        f"try again in a few seconds (it applies within "
        f"{services.settings.policy_check_interval_s:g} s)"
    )


@bp.post("/finetune/<path:alias>/run")
@require(WRITE)
def run_now(alias: str) -> BaseResponse:
    """Queue a run of the alias now; a skip or a refusal is shown with its reason."""
    back = redirect(url_for("finetune.index") + f"#alias-{alias}")
    if not ActionForm().validate_on_submit():
        return back
    waiting = not_yet_in_force("finetune.yaml", ("portal", "worker"))
    if waiting:
        flash(f"{alias}: {waiting}", "error")
        return back
    try:
        run = service.request_run(
            portal_services(),
            alias,
            trigger="portal",
            actor=signed_in_user().username,
            enqueue=enqueue_function(),
        )
    except ApplianceError as exc:
        flash(f"{alias}: {exc.message}", "error")
        return back
    if run.status == "skipped":
        flash(f"{alias} {run.label} skipped: {run.reason}", "error")
        return back
    flash(f"{alias} {run.label} is queued for training.", "ok")
    return redirect(url_for("finetune.run_detail", alias=alias, version=run.label))


_ROLLOUT: dict[str, dict[str, Any]] = {
    "promote": {
        "title": "Promote",
        "question": (
            "All of {alias}'s traffic goes to {label}. The version it replaces is superseded "
            "and its adapter unloaded; the base model stays, drained, for a rollback."
        ),
        "done": "{alias} {label} is promoted: it serves all of the alias's traffic.",
        "call": rollout.promote,
        "destructive": False,
    },
    "rollback": {
        "title": "Roll back",
        "question": (
            "{label} leaves service at once: its adapter is unloaded and {alias}'s traffic "
            "goes back to the version promoted before it, or to the base model."
        ),
        "done": "{alias} {label} is rolled back and out of service.",
        "call": rollout.rollback,
        "destructive": True,
    },
}


def _rollout_action(action: str, alias: str, version: str) -> BaseResponse | str:
    spec = _ROLLOUT[action]
    run = _run(alias, version)
    label = run.label
    if request.method == "GET":
        return render_template(
            "confirm.html",
            title=f"{spec['title']} {alias} {label}?",
            question=spec["question"].format(alias=alias, label=label),
            action_url=request.path,
            cancel_url=url_for("finetune.index") + f"#alias-{alias}",
            button=spec["title"],
            destructive=spec["destructive"],
            form=ActionForm(),
        )
    db_session().rollback()  # the domain function works in its own session
    try:
        spec["call"](portal_services(), alias, label, signed_in_user().username)
    except ApplianceError as exc:
        flash(f"{alias} {label}: {exc.message}", "error")
    else:
        flash(spec["done"].format(alias=alias, label=label), "ok")
    return redirect(url_for("finetune.index") + f"#alias-{alias}")


@bp.route("/finetune/<path:alias>/runs/<version>/promote", methods=["GET", "POST"])
@require(WRITE)
def promote(alias: str, version: str) -> BaseResponse | str:
    return _rollout_action("promote", alias, version)


@bp.route("/finetune/<path:alias>/runs/<version>/rollback", methods=["GET", "POST"])
@require(WRITE)
def rollback(alias: str, version: str) -> BaseResponse | str:
    return _rollout_action("rollback", alias, version)


@bp.app_template_filter("finetune_duration")
def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"
