"""What the home page reports: the database, every upstream, the background services and
whether the API's rate limits are shared through Redis.

Plain functions over the database that return plain dataclasses; the worker keeps the
rows fresh (upstream health checks, heartbeats), the portal only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from appliance.db import Database
from appliance.models import Model, ServiceHeartbeat, utcnow

BACKGROUND_SERVICES = ("worker", "beat")

ServiceState = Literal["healthy", "stale", "never seen"]


@dataclass(frozen=True)
class DatabaseHealth:
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class UpstreamHealth:
    model: str
    model_enabled: bool
    url: str | None  # None: the model has no upstream configured
    healthy: bool | None  # None: not checked yet
    last_checked_at: datetime | None
    last_error: str | None

    @property
    def state(self) -> Literal["yes", "no", "unknown"]:
        if self.healthy is None:
            return "unknown"
        return "yes" if self.healthy else "no"


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    state: ServiceState
    last_seen: datetime | None
    age_s: float | None


@dataclass(frozen=True)
class RateLimitSharing:
    """Whether the API's workers and hosts share one budget per key (through Redis)."""

    shared: bool
    notice: str | None = None  # what the dashboard says when they do not
    redis_error: str | None = None

    @property
    def state(self) -> Literal["shared", "per host", "redis down"]:
        if self.shared:
            return "shared"
        return "redis down" if self.redis_error else "per host"


WITHOUT_REDIS = (
    "Rate limits are not shared through Redis (redis_url is not set): the API workers of "
    "each host share them through a file in its run directory, but each API host admits a "
    "key's full limits on its own. Set redis_url to share them across hosts; each host's "
    "/readyz names the limiter in force."
)
REDIS_DOWN = (
    "Redis, where the API's rate limits are shared, does not answer: until it does, each API "
    "host enforces the limits on its own (its workers share them through a file in its run "
    "directory)."
)


def rate_limit_sharing(redis_url: str | None, timeout_s: float = 0.25) -> RateLimitSharing:
    """From the settings, and with Redis configured one PING (at most ``timeout_s``)."""
    if redis_url is None:
        return RateLimitSharing(shared=False, notice=WITHOUT_REDIS)
    client = redis.Redis.from_url(
        redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return RateLimitSharing(shared=False, notice=REDIS_DOWN, redis_error=type(exc).__name__)
    finally:
        client.close()
    return RateLimitSharing(shared=True)


@dataclass(frozen=True)
class HealthReport:
    database: DatabaseHealth
    upstreams: list[UpstreamHealth]
    services: list[ServiceHealth]
    error: str | None = None  # why upstreams and services could not be read


def database_health(db: Database) -> DatabaseHealth:
    try:
        db.ping()
    except SQLAlchemyError as exc:
        return DatabaseHealth(ok=False, error=describe_db_error(exc))
    return DatabaseHealth(ok=True)


def upstream_health(session: Session) -> list[UpstreamHealth]:
    """One row per upstream of every model, by model name; a model without any gets one."""
    rows: list[UpstreamHealth] = []
    for model in session.scalars(select(Model).order_by(Model.name)):
        if not model.upstreams:
            rows.append(UpstreamHealth(model.name, model.enabled, None, None, None, None))
        for upstream in model.upstreams:
            rows.append(
                UpstreamHealth(
                    model=model.name,
                    model_enabled=model.enabled,
                    url=upstream.url,
                    healthy=upstream.healthy,
                    last_checked_at=upstream.last_checked_at,
                    last_error=upstream.last_error,
                )
            )
    return rows


def service_health(
    session: Session,
    stale_after_s: float,
    *,
    names: tuple[str, ...] = BACKGROUND_SERVICES,
    now: datetime | None = None,
) -> list[ServiceHealth]:
    """Each named service: healthy if its heartbeat is recent, else stale or never seen."""
    now = now or utcnow()
    beats = {
        beat.name: beat
        for beat in session.scalars(
            select(ServiceHeartbeat).where(ServiceHeartbeat.name.in_(names))
        )
    }
    result = []
    for name in names:
        beat = beats.get(name)
        if beat is None:
            result.append(ServiceHealth(name, "never seen", None, None))
            continue
        age = (now - beat.last_seen).total_seconds()
        state: ServiceState = "healthy" if age <= stale_after_s else "stale"
        result.append(ServiceHealth(name, state, beat.last_seen, age))
    return result


def gather(db: Database, session: Session, stale_after_s: float) -> HealthReport:
    """Everything the home page shows; a database failure is reported, not raised."""
    database = database_health(db)
    if not database.ok:
        return HealthReport(database, [], [], error="the database is unreachable")
    try:
        upstreams = upstream_health(session)
        services = service_health(session, stale_after_s)
    except SQLAlchemyError as exc:
        session.rollback()
        return HealthReport(database, [], [], error=describe_db_error(exc))
    return HealthReport(database, upstreams, services)


def describe_db_error(exc: SQLAlchemyError) -> str:
    """A one-line description of a database failure: no SQL, no parameters."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(original).__name__}: {first}"[:300]
