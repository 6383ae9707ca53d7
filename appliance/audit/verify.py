"""Recomputing the audit chain and the checkpoints: what is intact, and the first break.

The chain is read in position order, a batch at a time (constant memory). At the first
place where it does not hold, the neighbours tell what happened:

- *deleted*: positions are missing (or the chain ends before its head or a checkpoint);
- *reordered*: the next event fits here and this one fits after it;
- *inserted*: the next event fits here, this one fits nowhere;
- *edited*: this event's content no longer gives its hash, but the chain goes on from it
  (an edit whose hash was recomputed too shows as the next link not following from it).

A checkpoint whose signature fails, or whose hash is not the chain's at its position, is
reported as such; so is a chain recomputed from the start, which cannot match a
checkpoint exported before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select, text

from appliance.audit.chain import EVENTS, GENESIS, chain_rows, head, link, link_sql
from appliance.audit.checkpoints import Checkpoint, key_id, signature_ok, stored
from appliance.db import Database

READ_BATCH = 5000


@dataclass(frozen=True)
class Break:
    kind: str  # edited | deleted | inserted | reordered | checkpoint
    where: str  # the event id, or "checkpoint at position N"
    pos: int
    message: str


@dataclass
class Report:
    first_pos: int = 0
    last_pos: int = 0
    events: int = 0
    checkpoints: int = 0
    unsealed: int = 0
    problem: Break | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(
    db: Database,
    public: Ed25519PublicKey,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    checkpoints: Iterable[Checkpoint] = (),
) -> Report:
    """Verify the chain (positions of the events in [since, until], or all of it)."""
    report = Report(unsealed=_unsealed(db))
    last_pos, last_hash = head(db)
    first, last = _positions(db, since, until, last_pos)
    report.first_pos, report.last_pos = first, last
    pinned = _checkpoints(public, [*stored(db), *checkpoints], report)
    if report.problem or last < first:
        return report
    previous = GENESIS if first == 1 else _hash_at(db, first - 1)
    if previous is None:
        report.problem = Break(
            "deleted", f"position {first - 1}", first - 1, "the event before the range is missing"
        )
        return report
    checked, report.problem = _walk(db, first, last, previous, pinned)
    report.events += checked
    if report.problem is None and since is None and until is None:
        report.problem = _tail(db, last_pos, last_hash, pinned)
    return report


def _walk(
    db: Database, first: int, last: int, previous: str, pinned: Mapping[int, Checkpoint]
) -> tuple[int, Break | None]:
    """Check [first, last]. On PostgreSQL the database recomputes every link itself and
    names the first bad position; Python then looks only there, to say what happened."""
    if not db.url.startswith("postgresql"):
        return _check(_rows(db, first, last + 1), first, last, previous, pinned)
    bad = _first_bad_position(db, first, last, previous, pinned)
    if bad is None:
        return last - first + 1, None
    start = max(first, bad - 1)
    before = previous if start == first else _hash_at(db, start - 1)
    if before is None:  # the event before the bad place is itself missing
        return start - first, Break(
            "deleted", f"position {start - 1}", start - 1, "this event is missing"
        )
    checked, problem = _check(
        _rows(db, start, min(last, bad + 1) + 1), start, min(last, bad + 1), before, pinned
    )
    return start - first + checked, problem


def _first_bad_position(
    db: Database, first: int, last: int, previous: str, pinned: Mapping[int, Checkpoint]
) -> int | None:
    """The first position in [first, last] that is missing, does not link, or differs from
    a checkpoint, as PostgreSQL finds it in one pass."""
    # Built only from the model's own column names: nothing from outside enters the text.
    query = text(
        "SELECT min(chain_pos) FROM ("  # noqa: S608
        "  SELECT chain_pos, chain_hash,"
        f"   {link_sql('coalesce(lag(chain_hash) OVER w, :previous)')} AS computed,"
        "    chain_pos - coalesce(lag(chain_pos) OVER w, :first - 1) AS step"
        "  FROM audit_events WHERE chain_pos BETWEEN :first AND :last"
        "  WINDOW w AS (ORDER BY chain_pos)"
        ") AS t WHERE computed <> chain_hash OR step <> 1"
    )
    with db.session() as session:
        bad = session.scalar(query, {"first": first, "last": last, "previous": previous})
        count, top = session.execute(
            select(func.count(), func.max(EVENTS.c.chain_pos)).where(
                EVENTS.c.chain_pos.between(first, last)
            )
        ).one()
        marks = [p for p in pinned if first <= p <= last]
        stored = dict(
            session.execute(
                select(EVENTS.c.chain_pos, EVENTS.c.chain_hash).where(
                    EVENTS.c.chain_pos.in_(marks)
                )
            ).all()
        ) if marks else {}  # fmt: skip
    candidates = [] if bad is None else [bad]
    candidates += [p for p in marks if stored.get(p) != pinned[p].chain_hash]
    if bad is None and count != last - first + 1:  # no gap inside: the end is missing
        candidates.append((top or first - 1) + 1)
    return min(candidates) if candidates else None


def _check(
    rows: Iterator[Any], first: int, last: int, previous: str, pinned: Mapping[int, Checkpoint]
) -> tuple[int, Break | None]:
    """Walk rows of positions first..last (one more is read, to diagnose the last)."""
    expected, checked = first, 0
    row = next(rows, None)
    while row is not None and row.chain_pos <= last:
        after = next(rows, None)
        pos = row.chain_pos
        if pos != expected:
            missing = f"{expected}" if pos == expected + 1 else f"{expected}..{pos - 1}"
            return checked, Break(
                "deleted",
                str(row.event_id),
                expected,
                f"the events at position {missing} are missing (before this event)",
            )
        if link(previous, pos, row) != row.chain_hash:
            return checked, _diagnose(previous, row, after)
        if pos in pinned and pinned[pos].chain_hash != row.chain_hash:
            return checked, _checkpoint_break(
                pinned[pos], "does not match the chain at its position"
            )
        checked += 1
        previous, expected, row = row.chain_hash, expected + 1, after
    if expected <= last:
        return checked, Break("deleted", f"position {expected}", expected, "the chain ends early")
    return checked, None


def _diagnose(previous: str, row: Any, after: Any | None) -> Break:
    pos, event = row.chain_pos, str(row.event_id)
    if after is not None and link(previous, pos, after) in (after.chain_hash, row.chain_hash):
        if link(after.chain_hash, pos + 1, row) in (row.chain_hash, after.chain_hash):
            return Break(
                "reordered",
                event,
                pos,
                f"this event and the next ({after.event_id}) are out of order",
            )
        return Break("inserted", event, pos, "this event was inserted into the chain")
    if after is None or link(row.chain_hash, pos + 1, after) == after.chain_hash:
        return Break("edited", event, pos, "its content no longer matches its sealed hash")
    return Break(
        "edited",
        event,
        pos,
        "this event's hash is not what the chain gives here (it, or the event before, "
        "was edited and re-hashed)",
    )


def _tail(
    db: Database, head_pos: int, head_hash: str, pinned: Mapping[int, Checkpoint]
) -> Break | None:
    with db.session() as session:
        top = session.scalar(select(func.max(EVENTS.c.chain_pos))) or 0
    beyond = [c for pos, c in pinned.items() if pos > top]
    if beyond:
        return _checkpoint_break(beyond[0], "is past the end of the chain: events were deleted")
    if top != head_pos:
        return Break(
            "deleted",
            f"position {top + 1}",
            top + 1,
            f"the chain ends at position {top} but was sealed up to {head_pos}",
        )
    if head_pos and _hash_at(db, head_pos) != head_hash:
        return Break("edited", f"position {head_pos}", head_pos, "the chain head does not match")
    return None


def _checkpoints(
    public: Ed25519PublicKey, all_checkpoints: Iterable[Checkpoint], report: Report
) -> dict[int, Checkpoint]:
    pinned: dict[int, Checkpoint] = {}
    mine = key_id(public)
    for checkpoint in all_checkpoints:
        if checkpoint.key_id != mine or not signature_ok(public, checkpoint):
            report.problem = _checkpoint_break(checkpoint, "has an invalid signature")
            return pinned
        known = pinned.get(checkpoint.chain_pos)
        if known is not None and known.chain_hash != checkpoint.chain_hash:
            report.problem = _checkpoint_break(checkpoint, "contradicts another checkpoint")
            return pinned
        pinned[checkpoint.chain_pos] = checkpoint
    report.checkpoints = len(pinned)
    return pinned


def _checkpoint_break(checkpoint: Checkpoint, what: str) -> Break:
    where = f"checkpoint at position {checkpoint.chain_pos}"
    return Break("checkpoint", where, checkpoint.chain_pos, f"{where} {what}")


def _rows(db: Database, first: int, last: int) -> Iterator[Any]:
    """Rows in position order; the next batch is read while this one is checked."""
    with ThreadPoolExecutor(1, thread_name_prefix="audit-verify") as reader:
        pending = reader.submit(_batch, db, first, last)
        while True:
            batch = pending.result()
            if not batch:
                return
            pending = reader.submit(_batch, db, batch[-1].chain_pos + 1, last)
            yield from batch


def _batch(db: Database, start: int, last: int) -> list[Any]:
    if start > last:
        return []
    with db.session() as session:
        return list(
            session.execute(
                chain_rows(EVENTS.c.chain_pos >= start, EVENTS.c.chain_pos <= last)
                .order_by(EVENTS.c.chain_pos)
                .limit(READ_BATCH)
            ).all()
        )


def _hash_at(db: Database, pos: int) -> str | None:
    with db.session() as session:
        return session.scalar(select(EVENTS.c.chain_hash).where(EVENTS.c.chain_pos == pos))


def _positions(
    db: Database, since: datetime | None, until: datetime | None, head_pos: int
) -> tuple[int, int]:
    if since is None and until is None:
        return 1, head_pos
    query = select(func.min(EVENTS.c.chain_pos), func.max(EVENTS.c.chain_pos))
    if since is not None:
        query = query.where(EVENTS.c.timestamp >= since)
    if until is not None:
        query = query.where(EVENTS.c.timestamp <= until)
    with db.session() as session:
        low, high = session.execute(query).one()
    return (low, high) if low is not None else (1, 0)


def _unsealed(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).where(EVENTS.c.chain_pos.is_(None))) or 0)
