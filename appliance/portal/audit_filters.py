"""The audit dashboard's filters (a validated GET form) and its timeline query.

Filters are GET arguments (a bookmarkable view), validated like any form; the same filters
select what an export contains. Privacy findings are matched with JSON path operators that
SQLAlchemy compiles for both PostgreSQL and SQLite.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import request
from sqlalchemy import ColumnElement, Text, cast, func, or_, select
from sqlalchemy.orm import Session
from wtforms import DateTimeLocalField, Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from appliance.models import AuditEvent
from appliance.portal import stats
from appliance.privacy.detectors import TYPES

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


def read_filters() -> tuple[FilterForm, Filters | None]:
    form = FilterForm(request.args)
    return form, Filters.of(form) if form.validate() else None


# The dashboard ------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    chart: stats.Chart
    clipped: bool  # the range has no start: only its last TIMELINE_SPAN is drawn


def timeline_of(session: Session, filters: Filters) -> Timeline | None:
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
