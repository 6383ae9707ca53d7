"""Runs of an alias's fine-tune: creating them, the per-alias lease, and the queries that
the CLI, the portal and the scheduler ask.

The lock is a row per alias holding a run id and a lease. It lives in the database, not in
a worker, so a worker that dies keeps it: no second run starts for the alias until the
lease runs out, and then the same run (resumed from its last checkpoint) or a new one may
take it. A live worker renews the lease at every progress report.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.errors import NotFound
from appliance.models import FinetuneLock, FinetuneRun, utcnow
from appliance.models.finetune import RUN_ACTIVE, RUN_SERVING


def next_version(session: Session, alias: str) -> int:
    latest = session.scalar(select(func.max(FinetuneRun.version)).where(FinetuneRun.alias == alias))
    return (latest or 0) + 1


def create_run(
    session: Session,
    alias: str,
    *,
    trigger: str,
    actor: str | None,
    status: str = "queued",
    reason: str | None = None,
) -> FinetuneRun:
    run = FinetuneRun(
        alias=alias,
        version=next_version(session, alias),
        status=status,
        reason=reason,
        trigger=trigger,
        requested_by=actor,
    )
    if status not in RUN_ACTIVE:
        run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, alias: str, version: str | int) -> FinetuneRun:
    number = _version_number(version)
    run = session.scalar(
        select(FinetuneRun).where(FinetuneRun.alias == alias, FinetuneRun.version == number)
    )
    if run is None:
        raise NotFound(f"alias {alias!r} has no fine-tune version {version!r}")
    return run


# The largest version the database's integer column holds; no run can have a larger one.
MAX_VERSION = 2**31 - 1


def _version_number(version: str | int) -> int:
    text = str(version).removeprefix("v")
    # ASCII digits only ("²" is a digit to str.isdigit, not to int), and few enough of them.
    if not (text.isascii() and text.isdigit()):
        raise NotFound(f"{version!r} is not a version (v1, v2, ...)")
    if len(text.lstrip("0")) > len(str(MAX_VERSION)) or int(text) > MAX_VERSION:
        raise NotFound(f"{version!r} is past the largest version (v{MAX_VERSION})")
    return int(text)


def active_run(session: Session, alias: str) -> FinetuneRun | None:
    return session.scalar(
        select(FinetuneRun)
        .where(FinetuneRun.alias == alias, FinetuneRun.status.in_(RUN_ACTIVE))
        .order_by(FinetuneRun.id.desc())
    )


def serving_runs(session: Session, alias: str) -> list[FinetuneRun]:
    return list(
        session.scalars(
            select(FinetuneRun)
            .where(FinetuneRun.alias == alias, FinetuneRun.status.in_(RUN_SERVING))
            .order_by(FinetuneRun.version)
        )
    )


def promoted_run(session: Session, alias: str) -> FinetuneRun | None:
    return session.scalar(
        select(FinetuneRun).where(FinetuneRun.alias == alias, FinetuneRun.status == "promoted")
    )


def previous_promoted(session: Session, alias: str, before: int) -> FinetuneRun | None:
    """The newest version before ``before`` that was promoted and later superseded."""
    return session.scalar(
        select(FinetuneRun)
        .where(
            FinetuneRun.alias == alias,
            FinetuneRun.version < before,
            FinetuneRun.status == "superseded",
        )
        .order_by(FinetuneRun.version.desc())
    )


def list_runs(session: Session, alias: str | None = None, limit: int = 50) -> list[FinetuneRun]:
    query = select(FinetuneRun).order_by(FinetuneRun.id.desc()).limit(limit)
    if alias is not None:
        query = query.where(FinetuneRun.alias == alias)
    return list(session.scalars(query))


def stale_runs(session: Session) -> list[FinetuneRun]:
    """Active runs whose lease ran out (their worker died) or that never got one."""
    now = utcnow()
    held = select(FinetuneLock.run_id).where(FinetuneLock.expires_at > now)
    return list(
        session.scalars(
            select(FinetuneRun).where(
                FinetuneRun.status.in_(RUN_ACTIVE[1:]), FinetuneRun.id.not_in(held)
            )
        )
    )


# -------------------------------------------------------------------------- the lease


def acquire(session: Session, alias: str, run_id: int, holder: str, ttl_s: float) -> bool:
    """Take the alias's lease for ``run_id`` (or renew our own); False while anyone else
    holds a live one, even a delivery of the same run whose worker may still be working.
    Commits, so the lease is visible to every other worker at once."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl_s)
    taken = session.execute(
        update(FinetuneLock)
        .where(
            FinetuneLock.alias == alias,
            ((FinetuneLock.run_id == run_id) & (FinetuneLock.holder == holder))
            | (FinetuneLock.expires_at <= now),
        )
        .values(run_id=run_id, holder=holder, acquired_at=now, expires_at=expires)
    )
    if getattr(taken, "rowcount", 0):
        session.commit()
        return True
    session.add(
        FinetuneLock(alias=alias, run_id=run_id, holder=holder, acquired_at=now, expires_at=expires)
    )
    try:
        session.commit()
    except IntegrityError:  # another run holds a live lease
        session.rollback()
        return False
    return True


def renew(session: Session, alias: str, run_id: int, ttl_s: float) -> bool:
    """Extend our lease; False if it was lost (another run took it after it ran out)."""
    result = session.execute(
        update(FinetuneLock)
        .where(FinetuneLock.alias == alias, FinetuneLock.run_id == run_id)
        .values(expires_at=utcnow() + timedelta(seconds=ttl_s))
    )
    return bool(getattr(result, "rowcount", 0))


def release(session: Session, alias: str, run_id: int) -> None:
    session.execute(
        delete(FinetuneLock).where(FinetuneLock.alias == alias, FinetuneLock.run_id == run_id)
    )


def lock_of(session: Session, alias: str) -> FinetuneLock | None:
    return session.get(FinetuneLock, alias)
