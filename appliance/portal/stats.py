"""The dashboard's traffic figures: SQL aggregates over the API's audit events.

Every API call leaves one event (``category = 'api'``) with its outcome, status, key
and tokens, so requests per minute, errors, tokens per day and the busiest keys are
grouped and counted by the database, never by loading rows. Buckets are UTC strings
("YYYY-MM-DD HH:MM", "YYYY-MM-DD") computed the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from appliance.models import AuditEvent, utcnow

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


def _bucket(session: Session, fmt: str) -> ColumnElement[Any]:
    """The event's UTC minute (fmt "minute") or day ("day") as a string, per dialect."""
    column = AuditEvent.timestamp
    if session.get_bind().dialect.name == "postgresql":
        pattern = "YYYY-MM-DD HH24:MI" if fmt == "minute" else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", column), pattern)
    pattern = "%Y-%m-%d %H:%M" if fmt == "minute" else "%Y-%m-%d"
    return func.strftime(pattern, column)


def _tokens() -> ColumnElement[Any]:
    return func.coalesce(AuditEvent.prompt_tokens, 0) + func.coalesce(
        AuditEvent.completion_tokens, 0
    )


def _failed() -> ColumnElement[Any]:
    return func.sum(case((AuditEvent.outcome == "failure", 1), else_=0))


def traffic(session: Session, now: datetime | None = None) -> Traffic:
    now = (now or utcnow()).replace(second=0, microsecond=0)
    hour_ago = now - timedelta(minutes=59)
    day_ago = now - timedelta(hours=24)
    first_day = (now - timedelta(days=13)).replace(hour=0, minute=0)
    api = AuditEvent.category == API

    minute = _bucket(session, "minute")
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

    day = _bucket(session, "day")
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
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    """A bar chart laid out for an inline SVG (no script, nothing for the CSP to refuse)."""

    width: int
    height: int
    bars: list[Bar]
    maximum: int
    first_label: str
    last_label: str


def bar_chart(points: list[Point], width: int = 600, height: int = 140) -> Chart:
    top = max((p.value for p in points), default=0)
    scale = (height - 20) / top if top else 0.0
    step = width / max(len(points), 1)
    bars = [
        Bar(
            x=round(i * step + 1, 2),
            y=round(height - 16 - p.value * scale, 2),
            width=round(max(step - 2, 1), 2),
            height=round(p.value * scale, 2),
            label=p.label,
            value=p.value,
        )
        for i, p in enumerate(points)
    ]
    return Chart(
        width=width,
        height=height,
        bars=bars,
        maximum=top,
        first_label=points[0].label if points else "",
        last_label=points[-1].label if points else "",
    )
