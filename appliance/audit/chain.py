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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from itertools import islice
from typing import Any, cast

from sqlalchemy import DateTime, Select, Table, Text, bindparam, select, text, type_coerce, update
from sqlalchemy import cast as cast_
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


def _as_read(name: str) -> Any:
    """A column as the chain reads it: details as the JSON text stored (so nothing is
    parsed and re-serialised), the timestamp without the ORM's conversion (done once in
    ``_text``)."""
    column = EVENTS.c[name]
    if name == "details":
        return cast_(column, Text).label(name)
    if name == "timestamp":
        return type_coerce(column, DateTime(timezone=True)).label(name)
    return column


# What the chain reads of an event: its place, then the attested fields in a fixed order.
CHAIN_COLUMNS = (
    EVENTS.c.seq,
    EVENTS.c.chain_pos,
    EVENTS.c.chain_hash,
    *(_as_read(name) for name in CANON_FIELDS),
)
_FIRST_FIELD = 3
_TIMESTAMP = CANON_FIELDS.index("timestamp")
_DURATION = CANON_FIELDS.index("duration_ms")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def chain_rows(*where: Any) -> Select[Any]:
    """A select of events as the chain reads them (add order_by and limit)."""
    return select(*CHAIN_COLUMNS).where(*where)


def canonical(row: Sequence[Any]) -> str:
    """The attested fields of a row from ``chain_rows`` as one JSON array, in a fixed order
    (strings quoted, integers, nulls; the time in UTC with microseconds; the duration in
    whole microseconds; the details as their stored JSON text), encoded by the json
    module's C encoder. ``canonical_sql`` builds the same text inside PostgreSQL."""
    fields = list(islice(row, _FIRST_FIELD, None))
    moment = fields[_TIMESTAMP]
    # SQLite gives naive UTC, PostgreSQL an aware time.
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    fields[_TIMESTAMP] = moment.isoformat(timespec="microseconds")
    if fields[_DURATION] is not None:
        fields[_DURATION] = round(fields[_DURATION] * 1000)
    return _ENCODER.encode(fields)


def canonical_sql(table: str = "audit_events") -> str:
    """PostgreSQL's expression for ``canonical`` (json's escaping is PostgreSQL's to_json's:
    the same escapes, non-ASCII left as it is), so verify can hash inside the database."""
    parts = []
    for name in CANON_FIELDS:
        column = f"{table}.{name}"
        if name == "timestamp":
            value = (
                f"to_json(to_char({column} AT TIME ZONE 'UTC', "
                '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\'))'
            )
        elif name == "duration_ms":
            value = f"to_json(round({column} * 1000)::bigint)"
        elif name == "details":
            value = f"to_json({column}::text)"
        else:
            value = f"to_json({column})"
        parts.append(f"coalesce({value}::text, 'null')")
    return "'[' || " + " || ',' || ".join(parts) + " || ']'"


def link_sql(previous: str, table: str = "audit_events") -> str:
    """PostgreSQL's expression for ``link``, given an SQL expression for the previous hash."""
    return (
        f"encode(sha256(convert_to('v{CANON_VERSION}|' || {previous} || '|' || "
        f"{table}.chain_pos || '|' || {canonical_sql(table)}, 'UTF8')), 'hex')"
    )


def link(previous: str, pos: int, row: Sequence[Any]) -> str:
    """The chain's hash after ``row`` (from ``chain_rows``) at ``pos``."""
    return _digest(previous, pos, canonical(row))


def _digest(previous: str, pos: int, form: str) -> str:
    return hashlib.sha256(f"v{CANON_VERSION}|{previous}|{pos}|{form}".encode()).hexdigest()


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
            rows = _unsealed(session, batch)
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


def _unsealed(session: Session, batch: int) -> list[tuple[int, str]]:
    """(seq, canonical form) of the next unsealed events: built by PostgreSQL itself
    there (``canonical_sql``), by ``canonical`` elsewhere."""
    if session.connection().dialect.name == "postgresql":
        query = text(  # built only from the model's own column names
            f"SELECT seq, {canonical_sql()} FROM audit_events "  # noqa: S608
            "WHERE chain_pos IS NULL ORDER BY seq LIMIT :batch"
        )
        return [(seq, form) for seq, form in session.execute(query, {"batch": batch})]
    rows = session.execute(
        chain_rows(EVENTS.c.chain_pos.is_(None)).order_by(EVENTS.c.seq).limit(batch)
    )
    return [(row.seq, canonical(row)) for row in rows]


def _seal_rows(
    session: Session, head: tuple[int, str], rows: Sequence[tuple[int, str]]
) -> tuple[int, str] | None:
    """Chain ``rows`` after ``head``; the new head, or None if another sealer moved it."""
    pos, current = head
    updates = []
    for seq, form in rows:
        pos += 1
        current = _digest(current, pos, form)
        updates.append((seq, pos, current))
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
    _write_seals(session, updates)
    return pos, current


def _write_seals(session: Session, seals: list[tuple[int, int, str]]) -> None:
    """(seq, position, hash) onto the events: on PostgreSQL one COPY into a temporary table
    and one UPDATE from it; elsewhere one executemany by primary key."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(
            update(EVENTS)
            .where(EVENTS.c.seq == bindparam("b_seq"))
            .values(chain_pos=bindparam("b_pos"), chain_hash=bindparam("b_hash")),
            [{"b_seq": seq, "b_pos": pos, "b_hash": digest} for seq, pos, digest in seals],
        )
        return
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS audit_seal_batch "
            "(seq bigint PRIMARY KEY, pos bigint, hash text) ON COMMIT DELETE ROWS"
        )
        with cursor.copy("COPY audit_seal_batch (seq, pos, hash) FROM STDIN") as copy:
            for seal in seals:
                copy.write_row(seal)
        cursor.execute(
            "UPDATE audit_events SET chain_pos = b.pos, chain_hash = b.hash "
            "FROM audit_seal_batch b WHERE audit_events.seq = b.seq"
        )


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
