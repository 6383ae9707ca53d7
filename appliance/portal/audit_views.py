"""The audit dashboard: filter and search the trail, a timeline, each event in full, the
chain's integrity (verify now), and exports. Read-only, except that verifying and
exporting are themselves audited.

Nobody can change or delete an event through the appliance: there is no such route and
no such permission. Filters are GET arguments (a bookmarkable view), validated like any
form; the same filters select what an export contains. Privacy findings are matched with
JSON path operators that SQLAlchemy compiles for both PostgreSQL and SQLite. Sealed
content (policy ``audit_content: encrypted``) is never opened here: only
``appliance audit content EVENT_ID`` on the appliance opens it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from sqlalchemy import ColumnElement, Text, and_, cast, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse
from wtforms import DateTimeLocalField, Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from appliance.audit import chain, service, shipping
from appliance.audit.checkpoints import Signer
from appliance.audit.ecs import csv_lines, jsonl, to_ecs
from appliance.audit.events import AuditAction
from appliance.audit.verify import verify
from appliance.auth.rbac import Permission
from appliance.errors import InvalidRequest, NotFound
from appliance.models import AuditCheckpoint, AuditEvent, AuditShipError, AuditSinkCursor, utcnow
from appliance.portal import stats
from appliance.portal.app import db_session, portal_services
from appliance.portal.auth import require
from appliance.portal.pages import audit, paginate
from appliance.privacy.detectors import TYPES

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50
EXPORT_CAP = 100_000
EXPORT_BATCH = 5000
OUTCOMES = ("success", "failure", "unknown")
ANY_FINDING = "any"
SEARCH_MAX = 200
TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
# Timeline grains, finest first: the first whose bucket count fits is used.
TIMELINE = (
    ("minute", timedelta(minutes=1), 120),
    ("hour", timedelta(hours=1), 96),
    ("day", timedelta(days=1), 186),
    ("month", timedelta(days=31), 240),
)
TIMELINE_SPAN = timedelta(days=30)
# The columns a search looks in (besides the details' JSON text).
SEARCHED = (
    AuditEvent.event_id,
    AuditEvent.action,
    AuditEvent.actor,
    AuditEvent.target,
    AuditEvent.api_key_prefix,
    AuditEvent.model,
    AuditEvent.request_id,
    AuditEvent.source_ip,
    AuditEvent.user_agent,
    AuditEvent.url_path,
)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class FilterForm(Form):
    """The dashboard's filters, read from the query string."""

    since = DateTimeLocalField("From (UTC)", format=TIME_FORMATS, validators=[Optional()])
    until = DateTimeLocalField("To (UTC)", format=TIME_FORMATS, validators=[Optional()])
    actor = StringField("User", filters=[_strip], validators=[Length(max=128)])
    key = StringField("API key id", filters=[_strip], validators=[Length(max=32)])
    model = StringField("Model", filters=[_strip], validators=[Length(max=128)])
    action = StringField("Action starts with", filters=[_strip], validators=[Length(max=64)])
    outcome = SelectField(
        "Outcome",
        default="",
        choices=[SelectChoice("", "any"), *(SelectChoice(o) for o in OUTCOMES)],
    )
    privacy = SelectField(
        "Privacy findings",
        default="",
        choices=[
            SelectChoice("", "—"),
            SelectChoice(ANY_FINDING, "any type"),
            *(SelectChoice(t) for t in TYPES),
        ],
    )
    q = StringField("Search", filters=[_strip], validators=[Length(max=SEARCH_MAX)])

    def validate_until(self, field: DateTimeLocalField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("Must not be before the start of the range.")


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""
    key: str = ""
    model: str = ""
    action: str = ""
    outcome: str = ""
    privacy: str = ""
    q: str = ""

    @classmethod
    def of(cls, form: FilterForm) -> Filters:
        def utc(value: datetime | None) -> datetime | None:
            return value.replace(tzinfo=UTC) if value else None

        return cls(
            since=utc(form.since.data),
            # "To 10:00" includes the whole minute (or second) it names.
            until=utc(form.until.data + _resolution(form.until.raw_data))
            if form.until.data
            else None,
            actor=form.actor.data or "",
            key=form.key.data or "",
            model=form.model.data or "",
            action=form.action.data or "",
            outcome=form.outcome.data or "",
            privacy=form.privacy.data or "",
            q=form.q.data or "",
        )

    def where(self) -> list[ColumnElement[bool]]:
        """The SQL conditions of these filters (empty: every event)."""
        e = AuditEvent
        conditions: list[ColumnElement[bool]] = []
        if self.since:
            conditions.append(e.timestamp >= self.since)
        if self.until:
            conditions.append(e.timestamp < self.until)
        for column, value in ((e.actor, self.actor), (e.api_key_prefix, self.key),
                              (e.model, self.model), (e.outcome, self.outcome)):  # fmt: skip
            if value:
                conditions.append(column == value)
        if self.action:
            conditions.append(e.action.startswith(self.action, autoescape=True))
        if self.privacy:
            conditions.append(_privacy(self.privacy))
        if self.q:
            conditions.append(_search(self.q))
        return conditions

    def describe(self) -> dict[str, Any]:
        """What an export records of these filters (the search text only by its length:
        it may hold personal data)."""
        out: dict[str, Any] = {
            name: value
            for name in ("actor", "key", "model", "action", "outcome", "privacy")
            if (value := getattr(self, name))
        }
        for name in ("since", "until"):
            if moment := getattr(self, name):
                out[name] = moment.isoformat()
        if self.q:
            out["search_chars"] = len(self.q)
        return out


def _resolution(raw: list[str] | None) -> timedelta:
    value = raw[0] if raw else ""
    return timedelta(seconds=1) if value.count(":") >= 2 else timedelta(minutes=1)


def _privacy(kind: str) -> ColumnElement[bool]:
    """Events whose details hold privacy findings (of ``kind``, or of any type). The
    paths are read as text (PostgreSQL ``#>>``, SQLite ``JSON_EXTRACT``): NULL where
    they are missing, on both."""

    def present(*path: str) -> ColumnElement[bool]:
        return AuditEvent.details[("privacy", *path)].as_string().is_not(None)

    blocked = AuditEvent.details[("privacy", "blocked")].as_string()
    if kind == ANY_FINDING:
        return or_(present("input"), present("output"), blocked.is_not(None))
    return or_(present("input", kind), present("output", kind), blocked == kind)


def _search(text: str) -> ColumnElement[bool]:
    """A case-insensitive substring of the main text columns or of the details' JSON text
    (where non-ASCII characters are stored as JSON escapes). A scan: its length is bounded
    and it narrows whatever the other filters leave."""
    needle = text.lower()
    found = [func.lower(column).contains(needle, autoescape=True) for column in SEARCHED]
    details = func.lower(cast(AuditEvent.details, Text))
    found.append(details.contains(needle, autoescape=True))
    # JSON escapes spell a letter's case in its code point: try the text as typed, in
    # lower case and in upper case.
    for variant in dict.fromkeys((text, needle, text.upper())):
        escaped = json.dumps(variant)[1:-1].lower()
        if escaped != needle:
            found.append(details.contains(escaped, autoescape=True))
    return or_(*found)


def _read_filters() -> tuple[FilterForm, Filters | None]:
    form = FilterForm(request.args)
    return form, Filters.of(form) if form.validate() else None


# The dashboard ------------------------------------------------------------------------


@bp.get("/audit")
@require(Permission.AUDIT_READ)
def index() -> str:
    form, filters = _read_filters()
    session = db_session()
    if filters is None:  # the form again, with its field errors (as every portal form)
        return _render_index(form, None, None, None, session)
    query = select(AuditEvent).where(*filters.where()).order_by(AuditEvent.seq.desc())
    page = paginate(session, query, size=PAGE_SIZE)
    timeline = _timeline(session, filters) if page.total else None
    return _render_index(form, filters, page, timeline, session)


def _render_index(
    form: FilterForm,
    filters: Filters | None,
    page: Any,
    timeline: Timeline | None,
    session: Session,
) -> str:
    args = {k: v for k, v in request.args.items() if k not in ("page", "format") and v}
    return render_template(
        "audit.html",
        form=form,
        page=page,
        timeline=timeline,
        args=args,
        export_cap=EXPORT_CAP,
        integrity=_integrity_summary(session),
    )


@dataclass(frozen=True)
class Timeline:
    chart: stats.Chart
    clipped: bool  # the range has no start: only its last TIMELINE_SPAN is drawn


def _timeline(session: Session, filters: Filters) -> Timeline | None:
    """Events per time bucket over the filtered range, stacked by outcome. Without a
    start, the last ``TIMELINE_SPAN`` of the range is drawn (the aggregate stays on the
    timestamp index however long the trail)."""
    conditions = filters.where()
    first, last = session.execute(
        select(func.min(AuditEvent.timestamp), func.max(AuditEvent.timestamp)).where(*conditions)
    ).one()
    if first is None:
        return None
    end = filters.until - timedelta(microseconds=1) if filters.until else last
    start = filters.since or max(first, end - TIMELINE_SPAN)
    clipped = filters.since is None and start > first
    if (end - start) / TIMELINE[-1][1] >= TIMELINE[-1][2]:  # a range far wider than the data
        start, end = max(start, first), min(end, last)
    grain, size = next(((g, s) for g, s, most in TIMELINE if (end - start) / s < most),
                       TIMELINE[-1][:2])  # fmt: skip
    fmt = stats.GRAINS[grain][1]
    bucket = stats.bucket(session, grain)
    counts: dict[str, dict[str, int]] = {}
    for label, outcome, n in session.execute(
        select(bucket, AuditEvent.outcome, func.count())
        .where(*conditions, AuditEvent.timestamp >= _floor(start, grain))
        .group_by(bucket, AuditEvent.outcome)
    ):
        slot = counts.setdefault(str(label), {})
        name = outcome if outcome in OUTCOMES else "unknown"
        slot[name] = slot.get(name, 0) + int(n)
    stacks, at, seen = [], _floor(start, grain), set()
    while at <= end:
        label = at.strftime(fmt)
        if label not in seen:  # a month step of 31 days can land twice in one month
            seen.add(label)
            stacks.append(stats.Stack(label, counts.get(label, {})))
        at = _floor(at + size, grain)
    return Timeline(stats.stacked_chart(stacks, OUTCOMES), clipped)


def _floor(moment: datetime, grain: str) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if grain in ("hour", "day", "month"):
        moment = moment.replace(minute=0)
    if grain in ("day", "month"):
        moment = moment.replace(hour=0)
    if grain == "month":
        moment = moment.replace(day=1)
    return moment


# One event --------------------------------------------------------------------------


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
    configured = [sink.name for sink in service.sinks(portal_services())]
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
    first byte is sent."""
    fmt = request.args.get("format", "")
    if fmt not in ("csv", "jsonl"):
        raise InvalidRequest("Choose the export format: csv or jsonl.")
    form, filters = _read_filters()
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
    )
    session.commit()
    rows = _export_rows(conditions, top, count)
    lines = csv_lines(rows) if fmt == "csv" else jsonl(rows)
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
