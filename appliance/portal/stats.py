"""The dashboard's traffic figures: SQL aggregates over the API's audit events.

Every API call leaves one event (``category = 'api'``) with its outcome, status, key
and tokens, so requests per minute, errors, tokens per day and the busiest keys are
grouped and counted by the database, never by loading rows. ``traffic(owner_id=...)``
counts only the calls made with that user's keys (the dashboard of a viewer who, as on
/keys, may see only their own keys). Buckets are UTC strings
("YYYY-MM-DD HH:MM", "YYYY-MM-DD HH", "YYYY-MM-DD", "YYYY-MM") computed the same way on
SQLite and PostgreSQL (``bucket``). Charts are laid out here for inline SVG: plain bars
(``bar_chart``) or bars stacked by series (``stacked_chart``, the audit timeline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from appliance.models import ApiKey, AuditEvent, utcnow

API = "api"


@dataclass(frozen=True)
class Point:
    label: str
    value: int


@dataclass(frozen=True)
class KeyUsage:
    prefix: str
    requests: int
    errors: int
    tokens: int


@dataclass(frozen=True)
class Traffic:
    per_minute: list[Point]  # the last 60 minutes, oldest first, gaps as zeros
    tokens_per_day: list[Point]  # the last 14 days
    requests_hour: int
    errors_hour: int
    requests_day: int
    errors_day: int
    tokens_today: int
    top_keys: list[KeyUsage]


# Bucket grains: (PostgreSQL to_char pattern, SQLite/Python strftime pattern).
GRAINS = {
    "minute": ("YYYY-MM-DD HH24:MI", "%Y-%m-%d %H:%M"),
    "hour": ("YYYY-MM-DD HH24", "%Y-%m-%d %H"),
    "day": ("YYYY-MM-DD", "%Y-%m-%d"),
    "month": ("YYYY-MM", "%Y-%m"),
}


def bucket(session: Session, grain: str) -> ColumnElement[Any]:
    """The event's UTC minute, hour, day or month as a string (``GRAINS``), per dialect;
    ``datetime.strftime(GRAINS[grain][1])`` gives the same string in Python."""
    column = AuditEvent.timestamp
    postgres, python = GRAINS[grain]
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), postgres)
    return func.strftime(python, column)


def _tokens() -> ColumnElement[Any]:
    return func.coalesce(AuditEvent.prompt_tokens, 0) + func.coalesce(
        AuditEvent.completion_tokens, 0
    )


def _failed() -> ColumnElement[Any]:
    return func.sum(case((AuditEvent.outcome == "failure", 1), else_=0))


def traffic(session: Session, now: datetime | None = None, owner_id: int | None = None) -> Traffic:
    """Every API call's figures, or with ``owner_id`` only those of that user's keys."""
    now = (now or utcnow()).replace(second=0, microsecond=0)
    hour_ago = now - timedelta(minutes=59)
    day_ago = now - timedelta(hours=24)
    first_day = (now - timedelta(days=13)).replace(hour=0, minute=0)
    api = AuditEvent.category == API
    if owner_id is not None:
        own = select(ApiKey.prefix).where(ApiKey.user_id == owner_id)
        api = api & AuditEvent.api_key_prefix.in_(own)

    minute = bucket(session, "minute")
    counts: dict[str, int] = dict(
        session.execute(
            select(minute, func.count())
            .where(api, AuditEvent.timestamp >= hour_ago)
            .group_by(minute)
        ).all()
    )
    per_minute = []
    for i in range(60):
        at = hour_ago + timedelta(minutes=i)
        per_minute.append(
            Point(at.strftime("%H:%M"), int(counts.get(at.strftime("%Y-%m-%d %H:%M"), 0)))
        )

    day = bucket(session, "day")
    tokens: dict[str, int] = dict(
        session.execute(
            select(day, func.sum(_tokens()))
            .where(api, AuditEvent.timestamp >= first_day)
            .group_by(day)
        ).all()
    )
    tokens_per_day = []
    for i in range(14):
        at = first_day + timedelta(days=i)
        tokens_per_day.append(
            Point(at.strftime("%m-%d"), int(tokens.get(at.strftime("%Y-%m-%d")) or 0))
        )

    def totals(since: datetime) -> tuple[int, int]:
        requests, errors = session.execute(
            select(func.count(), _failed()).where(api, AuditEvent.timestamp >= since)
        ).one()
        return int(requests or 0), int(errors or 0)

    requests_hour, errors_hour = totals(hour_ago)
    requests_day, errors_day = totals(day_ago)
    top = session.execute(
        select(AuditEvent.api_key_prefix, func.count(), _failed(), func.sum(_tokens()))
        .where(api, AuditEvent.timestamp >= day_ago, AuditEvent.api_key_prefix.is_not(None))
        .group_by(AuditEvent.api_key_prefix)
        .order_by(func.count().desc(), AuditEvent.api_key_prefix)
        .limit(10)
    ).all()
    return Traffic(
        per_minute=per_minute,
        tokens_per_day=tokens_per_day,
        requests_hour=requests_hour,
        errors_hour=errors_hour,
        requests_day=requests_day,
        errors_day=errors_day,
        tokens_today=tokens_per_day[-1].value,
        top_keys=[
            KeyUsage(str(prefix), int(n), int(errors or 0), int(tok or 0))
            for prefix, n, errors, tok in top
        ],
    )


@dataclass(frozen=True)
class Segment:
    """One series' part of a stacked bar."""

    series: str
    y: float
    height: float
    value: int


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    segments: tuple[Segment, ...] = ()  # bottom first; empty for a plain bar


@dataclass(frozen=True)
class Chart:
    """A bar chart laid out for an inline SVG (no script, nothing for the CSP to refuse)."""

    width: int
    height: int
    bars: list[Bar]
    maximum: int
    first_label: str
    last_label: str
    series: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stack:
    """A label and its value per series (missing series count zero)."""

    label: str
    values: Mapping[str, int]


def bar_chart(points: list[Point], width: int = 600, height: int = 140) -> Chart:
    chart = stacked_chart([Stack(p.label, {"": p.value}) for p in points], ("",), width, height)
    bars = [Bar(b.x, b.y, b.width, b.height, b.label, b.value) for b in chart.bars]
    return Chart(width, height, bars, chart.maximum, chart.first_label, chart.last_label)


def stacked_chart(
    stacks: list[Stack], series: Sequence[str], width: int = 600, height: int = 140
) -> Chart:
    """Bars whose height is the sum of ``series``, each split into one segment per series
    (in ``series`` order, from the bottom up)."""
    totals = [sum(s.values.get(name, 0) for name in series) for s in stacks]
    top = max(totals, default=0)
    scale = (height - 20) / top if top else 0.0
    step = width / max(len(stacks), 1)
    base = height - 16
    bars = []
    for i, (stack, total) in enumerate(zip(stacks, totals, strict=True)):
        segments, bottom = [], float(base)
        for name in series:
            value = stack.values.get(name, 0)
            if value:
                bottom -= value * scale
                segments.append(Segment(name, round(bottom, 2), round(value * scale, 2), value))
        bars.append(
            Bar(
                x=round(i * step + 1, 2),
                y=round(base - total * scale, 2),
                width=round(max(step - 2, 1), 2),
                height=round(total * scale, 2),
                label=stack.label,
                value=total,
                segments=tuple(segments),
            )
        )
    return Chart(
        width=width,
        height=height,
        bars=bars,
        maximum=top,
        first_label=stacks[0].label if stacks else "",
        last_label=stacks[-1].label if stacks else "",
        series=tuple(series),
    )
