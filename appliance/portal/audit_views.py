"""The audit dashboard: filter and search the trail, a timeline, each event in full, the
chain's integrity (verify now), and exports. Read-only, except that verifying and
exporting are themselves audited.

Nobody can change or delete an event through the appliance: there is no such route and
no such permission. The filters and the timeline's query are ``audit_filters``; the same
filters select what an export contains. Sealed content (policy ``audit_content:
encrypted``) is never opened here: only ``appliance audit content EVENT_ID`` on the
appliance opens it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from appliance.audit import chain, service, shipping
from appliance.audit.checkpoints import Signer
from appliance.audit.ecs import csv_lines, jsonl, to_ecs
from appliance.audit.events import AuditAction
from appliance.audit.verify import verify
from appliance.auth.access import require
from appliance.auth.rbac import Permission
from appliance.errors import InvalidRequest, NotFound
from appliance.models import AuditCheckpoint, AuditEvent, AuditShipError, AuditSinkCursor, utcnow
from appliance.portal.audit_filters import FilterForm, Filters, Timeline, read_filters, timeline_of
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit, paginate

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50
EXPORT_CAP = 100_000
EXPORT_BATCH = 5000


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/audit")
@require(Permission.AUDIT_READ)
def index() -> str:
    form, filters = read_filters()
    session = db_session()
    if filters is None:  # the form again, with its field errors (as every portal form)
        return _render_index(form, None, None, None, session)
    query = select(AuditEvent).where(*filters.where()).order_by(AuditEvent.seq.desc())
    page = paginate(session, query, size=PAGE_SIZE)
    timeline = timeline_of(session, filters) if page.total else None
    return _render_index(form, filters, page, timeline, session)


def _render_index(
    form: FilterForm,
    filters: Filters | None,
    page: Any,
    timeline: Timeline | None,
    session: Session,
) -> str:
    args = {k: v for k, v in request.args.items() if k not in ("page", "format", "bom") and v}
    return render_template(
        "audit.html",
        form=form,
        page=page,
        timeline=timeline,
        args=args,
        export_cap=EXPORT_CAP,
        integrity=_integrity_summary(session),
    )


@bp.get("/audit/<event_id>")
@require(Permission.AUDIT_READ)
def event(event_id: str) -> str:
    row = (
        db_session()
        .execute(select(chain.EVENTS).where(chain.EVENTS.c.event_id == event_id[:36]))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFound("There is no audit event with this id.")
    details = dict(row["details"] or {})
    sealed = details.get("content_sealed")
    document = to_ecs(row)
    if sealed is not None:
        shown = document.get("appliance", {}).get("details", {})
        shown["content_sealed"] = f"(sealed, {len(sealed)} characters, not opened here)"
    return render_template(
        "audit_event.html",
        row=row,
        fields=[(name, row[name]) for name in chain.CANON_FIELDS if name != "details"],
        privacy=details.get("privacy") or {},
        sealed=sealed is not None,
        document=json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True),
    )


# Integrity: the chain, checkpoints, sinks, verification --------------------------------


@dataclass(frozen=True)
class SinkState:
    name: str
    configured: bool
    shipped_to: int
    lag: int
    failures: int
    last_error: str | None
    updated_at: datetime | None
    refused: int
    refused_events: list[AuditShipError]


def _last_verify(session: Session) -> AuditEvent | None:
    return session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == AuditAction.AUDIT_VERIFY)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()


def _integrity_summary(session: Session) -> dict[str, Any]:
    db = portal_services().db
    pos, head_hash = chain.head(db)
    return {
        "head_pos": pos,
        "head_hash": head_hash,
        "unsealed": chain.unsealed_count(db),
        "last_verify": _last_verify(session),
    }


def _sinks(session: Session) -> list[SinkState]:
    db = portal_services().db
    configured = [sink.name for sink in service.sinks(portal_services().settings)]
    cursors = {c.sink: c for c in session.scalars(select(AuditSinkCursor))}
    refused = dict(
        session.execute(
            select(AuditShipError.sink, func.count()).group_by(AuditShipError.sink)
        ).all()
    )
    names = configured + sorted(set(cursors) - set(configured))
    states = []
    for name in names:
        cursor = cursors.get(name)
        states.append(
            SinkState(
                name=name,
                configured=name in configured,
                shipped_to=cursor.last_pos if cursor else 0,
                lag=shipping.lag(db, name),
                failures=cursor.failures if cursor else 0,
                last_error=cursor.last_error if cursor else None,
                updated_at=cursor.updated_at if cursor else None,
                refused=int(refused.get(name, 0)),
                refused_events=shipping.refused_events(db, name, limit=20),
            )
        )
    return states


@bp.get("/audit/integrity")
@require(Permission.AUDIT_READ)
def integrity() -> str:
    session = db_session()
    checkpoints = session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0
    last_checkpoint = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.chain_pos.desc()).limit(1)
    ).first()
    return render_template(
        "audit_integrity.html",
        summary=_integrity_summary(session),
        checkpoints=checkpoints,
        last_checkpoint=last_checkpoint,
        key_id=Signer(portal_services().master_key).key_id,
        sinks=_sinks(session),
        now=utcnow(),
    )


@bp.post("/audit/verify")
@require(Permission.AUDIT_READ)
def verify_now() -> BaseResponse:
    """Recompute the whole chain and the checkpoints now; the result is an audit event."""
    services = portal_services()
    report = verify(services.db, Signer(services.master_key).public)
    problem = report.problem
    audit(
        AuditAction.AUDIT_VERIFY,
        outcome="success" if report.ok else "failure",
        events=report.events,
        checkpoints=report.checkpoints,
        unsealed=report.unsealed,
        problem=problem.kind if problem else None,
        where=problem.where if problem else None,
        pos=problem.pos if problem else None,
        message=problem.message[:500] if problem else None,
    )
    db_session().commit()
    if problem is None:
        flash(
            f"The chain is intact: {report.events} events (positions {report.first_pos}.."
            f"{report.last_pos}), {report.checkpoints} checkpoints; "
            f"{report.unsealed} not sealed yet.",
            "ok",
        )
    else:
        flash(
            f"The chain is broken ({problem.kind}) at position {problem.pos}, "
            f"{problem.where}: {problem.message}",
            "error",
        )
    return redirect(url_for("audit.integrity"))


# Export -----------------------------------------------------------------------------


@bp.get("/audit/export")
@require(Permission.AUDIT_EXPORT)
def export() -> Response | tuple[str, int]:
    """The filtered events as ECS CSV or JSON lines, oldest first, streamed; at most
    ``EXPORT_CAP`` of them. The export is audited (format, filters, count) before the
    first byte is sent. In CSV, values a spreadsheet would run as formulas are prefixed
    with ``'``; ``bom=1`` starts it with a UTF-8 byte-order mark (Excel on Chinese
    Windows)."""
    fmt = request.args.get("format", "")
    if fmt not in ("csv", "jsonl"):
        raise InvalidRequest("Choose the export format: csv or jsonl.")
    bom = _flag(request.args.get("bom", ""), "bom")
    if bom and fmt != "csv":
        raise InvalidRequest("A byte-order mark (bom) is for the CSV export only.")
    form, filters = read_filters()
    session = db_session()
    if filters is None:
        return _render_index(form, None, None, None, session), 400
    conditions = filters.where()
    top = session.scalar(select(func.max(AuditEvent.seq)).where(*conditions)) or 0
    matched = session.scalar(
        select(func.count()).where(*conditions, AuditEvent.seq <= top)
    ) or 0  # fmt: skip
    count = min(matched, EXPORT_CAP)
    audit(
        AuditAction.AUDIT_EXPORT,
        format=fmt,
        filters=filters.describe(),
        events=count,
        matched=matched,
        truncated=matched > count,
        **_bom_detail(bom),
    )
    session.commit()
    rows = _export_rows(conditions, top, count)
    lines = csv_lines(rows, bom=bom) if fmt == "csv" else jsonl(rows)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    response = Response(
        stream_with_context(lines),
        mimetype="text/csv" if fmt == "csv" else "application/x-ndjson",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    response.headers["X-Export-Events"] = str(count)
    if matched > count:
        response.headers["X-Export-Truncated"] = f"{count} of {matched}"
    return response


def _bom_detail(bom: bool) -> dict[str, Any]:
    return {"bom": True} if bom else {}  # only then: other exports are recorded as before


def _flag(value: str, name: str) -> bool:
    """A yes/no query argument: ``1``/``true``/``yes``/``on``, or ``0``/``false``/``no``/
    ``off``/empty."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise InvalidRequest(f"{name} is 1 or 0.")


def _export_rows(conditions: list[ColumnElement[bool]], top: int, count: int) -> Iterator[Any]:
    """The events, oldest first, a batch at a time (each batch its own session)."""
    db, events, after, left = portal_services().db, chain.EVENTS, 0, count
    while left > 0:
        query = (
            select(events)
            .where(and_(*conditions, events.c.seq > after, events.c.seq <= top))
            .order_by(events.c.seq)
            .limit(min(EXPORT_BATCH, left))
        )
        with db.session() as session:
            rows = session.execute(query).mappings().all()
        if not rows:
            return
        yield from rows
        left -= len(rows)
        after = rows[-1]["seq"]
