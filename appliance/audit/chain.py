"""The hash chain that makes the audit trail tamper-evident.

Writers only insert events; they never wait on the chain. One sealer at a time (the chain
head row is locked) takes the unsealed events in insertion order and gives each the next
position and ``hash = SHA-256(previous hash | position | canonical event)``. The canonical
form is versioned (``CANON_VERSION``) and covers every field of the event, so editing,
deleting, inserting or reordering sealed events breaks the chain at that place. Signed
checkpoints (``checkpoints``) pin the chain's hash at a position, so even a chain
recomputed from the start does not match what was exported.

An event that commits after later-numbered ones (a slow transaction) is simply sealed
when it becomes visible: positions follow sealing order, and nothing is skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from appliance.db import Database
from appliance.models import AuditChainHead, AuditEvent, utcnow

CANON_VERSION = 1
GENESIS = "0" * 64
HEAD_ID = 1
EVENTS = cast(Table, AuditEvent.__table__)
# Every column an event is written with; the sealer's own columns and the row number are
# not part of what it attests.
CANON_FIELDS = tuple(
    c.name for c in EVENTS.columns if c.name not in ("seq", "chain_pos", "chain_hash")
)
SEAL_BATCH = 5000


def canonical(event: Mapping[str, Any]) -> bytes:
    """The event's fields as one stable byte string (sorted keys, UTC microseconds)."""
    fields = {name: _plain(event[name]) for name in CANON_FIELDS}
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def link(previous: str, pos: int, event: Mapping[str, Any]) -> str:
    """The chain's hash after ``event`` at ``pos``."""
    digest = hashlib.sha256(f"v{CANON_VERSION}|{previous}|{pos}|".encode())
    digest.update(canonical(event))
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


@dataclass(frozen=True)
class Sealed:
    events: int
    last_pos: int
    last_hash: str


def seal(db: Database, *, limit: int | None = None) -> Sealed:
    """Seal every unsealed event (or up to ``limit``), in batches; returns where the chain
    ends. Safe to run from several workers at once: they take turns on the head row."""
    total = 0
    while True:
        with db.session() as session:
            head = _locked_head(session)
            batch = SEAL_BATCH if limit is None else min(SEAL_BATCH, limit - total)
            rows = session.execute(
                select(EVENTS).where(EVENTS.c.chain_pos.is_(None)).order_by(EVENTS.c.seq)
                .limit(batch)
            ).mappings().all()  # fmt: skip
            end = (head.last_pos, head.last_hash)
            if rows:
                moved = _seal_rows(session, end, rows)
                if moved is None:
                    session.rollback()
                    continue  # another sealer moved the head first: take the next turn
                end = moved
            total += len(rows)
            result = Sealed(total, *end)
        if len(rows) < batch or (limit is not None and total >= limit):
            return result


def _seal_rows(
    session: Session, head: tuple[int, str], rows: Sequence[Any]
) -> tuple[int, str] | None:
    """Chain ``rows`` after ``head``; the new head, or None if another sealer moved it."""
    pos, current = head
    updates = []
    for row in rows:
        pos += 1
        current = link(current, pos, row)
        updates.append({"b_seq": row["seq"], "b_pos": pos, "b_hash": current})
    # Moving the head first is a compare and swap: where the backend has no row locks
    # (SQLite), a sealer that read the same head finds it moved and takes its turn again.
    moved = session.execute(
        update(AuditChainHead)
        .where(
            AuditChainHead.id == HEAD_ID,
            AuditChainHead.last_pos == head[0],
            AuditChainHead.last_hash == head[1],
        )
        .values(last_pos=pos, last_hash=current, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        return None
    # One executemany by primary key: psycopg pipelines it, SQLite runs it in one go.
    session.connection().execute(
        update(EVENTS)
        .where(EVENTS.c.seq == bindparam("b_seq"))
        .values(chain_pos=bindparam("b_pos"), chain_hash=bindparam("b_hash")),
        updates,
    )
    return pos, current


def _locked_head(session: Session) -> AuditChainHead:
    """The head row (migration 0004 creates it), locked for this transaction."""
    return session.scalars(
        select(AuditChainHead).where(AuditChainHead.id == HEAD_ID).with_for_update()
    ).one()


def head(db: Database) -> tuple[int, str]:
    """(last position, last hash) of the chain, without locking it."""
    with db.session() as session:
        row = session.get(AuditChainHead, HEAD_ID)
        return (row.last_pos, row.last_hash) if row else (0, GENESIS)


def unsealed_count(db: Database) -> int:
    from sqlalchemy import func

    with db.session() as session:
        return int(session.scalar(select(func.count()).where(EVENTS.c.chain_pos.is_(None))) or 0)
