"""Shipping sealed audit events out: Elasticsearch (a data stream) and a JSON-lines file.

Each sink has a cursor in the database: the last chain position it has. ``ship`` sends
what follows it, in chain order, a batch at a time, and moves the cursor only after the
sink has taken the batch. So a backlog of any size waits safely in the database, and a
crash or an unreachable sink only means the batch is sent again:

- Elasticsearch: each document's ``_id`` is the event id and the bulk action is
  ``create``, so a document sent twice is refused as a conflict (409) and stored once.
  Other per-document errors are kept (``audit_ship_errors``), shown, and can be sent
  again; they never stop the events behind them.
- The JSON-lines file (ECS, for Filebeat): before appending, the file's own last line
  says how far it got, so a batch written just before a crash is not written twice.

A sink that cannot be reached raises ``ShippingError``; the Celery task retries it with
exponential backoff, and the cursor records the failures and the last error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, func, select

from appliance.audit.chain import EVENTS
from appliance.audit.ecs import to_ecs
from appliance.db import Database
from appliance.errors import ApplianceError
from appliance.models import AuditShipError, AuditSinkCursor, utcnow

log = logging.getLogger(__name__)
BATCH = 1000


class ShippingError(ApplianceError):
    """A sink could not take a batch (unreachable, refused the request as a whole)."""


@dataclass(frozen=True)
class Refused:
    event_id: str
    chain_pos: int
    error: str


class Sink(Protocol):
    name: str

    def prepare(self) -> None:
        """Create what the sink needs (templates, policies, folders); idempotent."""

    def resume_after(self) -> int | None:
        """The last position the sink itself knows it has, if it can tell."""

    def send(self, docs: Sequence[tuple[str, int, dict[str, Any]]]) -> list[Refused]:
        """Store (event id, position, ECS document)s in order; the ones refused."""


@dataclass(frozen=True)
class Shipped:
    sink: str
    events: int
    refused: int
    cursor: int


def ship(
    db: Database, sink: Sink, *, batch: int = BATCH, max_batches: int | None = None
) -> Shipped:
    """Send what the sink does not have yet, in chain order; raises ShippingError (and
    records the failure, for back-off) when the sink cannot take it."""
    try:
        return _ship(db, sink, batch, max_batches)
    except ShippingError as exc:
        _failed(db, sink.name, exc.message)
        raise


def _ship(db: Database, sink: Sink, batch: int, max_batches: int | None) -> Shipped:
    sink.prepare()
    sent = refused = batches = 0
    cursor = max(_cursor(db, sink.name), sink.resume_after() or 0)
    while max_batches is None or batches < max_batches:
        rows = _after(db, cursor, batch)
        if not rows:
            break
        docs = [(str(r["event_id"]), int(r["chain_pos"]), to_ecs(r)) for r in rows]
        errors = sink.send(docs)
        cursor = docs[-1][1]
        _advance(db, sink.name, cursor, errors)
        sent, refused, batches = sent + len(docs), refused + len(errors), batches + 1
    return Shipped(sink.name, sent, refused, cursor)


def lag(db: Database, sink: str) -> int:
    """Sealed events the sink does not have yet."""
    with db.session() as session:
        top = session.scalar(select(func.max(EVENTS.c.chain_pos))) or 0
    return max(0, top - _cursor(db, sink))


def refused_events(db: Database, sink: str, limit: int = 100) -> list[AuditShipError]:
    with db.session() as session:
        return list(
            session.scalars(
                select(AuditShipError)
                .where(AuditShipError.sink == sink)
                .order_by(AuditShipError.chain_pos)
                .limit(limit)
            )
        )


def resend_refused(db: Database, sink: Sink) -> Shipped:
    """Send the refused documents again; those now taken leave the error list."""
    sink.prepare()
    kept = refused_events(db, sink.name, limit=BATCH)
    if not kept:
        return Shipped(sink.name, 0, 0, _cursor(db, sink.name))
    with db.session() as session:
        rows = session.execute(
            select(EVENTS).where(EVENTS.c.event_id.in_([e.event_id for e in kept]))
            .order_by(EVENTS.c.chain_pos)
        ).mappings().all()  # fmt: skip
    errors = sink.send([(str(r["event_id"]), int(r["chain_pos"]), to_ecs(r)) for r in rows])
    still = {e.event_id for e in errors}
    with db.session() as session:
        session.execute(
            delete(AuditShipError).where(
                AuditShipError.sink == sink.name,
                AuditShipError.event_id.in_([e.event_id for e in kept if e.event_id not in still]),
            )
        )
    return Shipped(sink.name, len(rows), len(errors), _cursor(db, sink.name))


def _after(db: Database, cursor: int, batch: int) -> Sequence[Any]:
    with db.session() as session:
        return session.execute(
            select(EVENTS).where(EVENTS.c.chain_pos > cursor).order_by(EVENTS.c.chain_pos)
            .limit(batch)
        ).mappings().all()  # fmt: skip


def _cursor(db: Database, sink: str) -> int:
    with db.session() as session:
        row = session.get(AuditSinkCursor, sink)
        return row.last_pos if row else 0


def _advance(db: Database, sink: str, cursor: int, errors: Iterable[Refused]) -> None:
    with db.session() as session:
        row = session.get(AuditSinkCursor, sink) or AuditSinkCursor(sink=sink)
        row.last_pos, row.updated_at, row.failures, row.last_error = cursor, utcnow(), 0, None
        session.add(row)
        for e in errors:
            session.add(
                AuditShipError(sink=sink, event_id=e.event_id, chain_pos=e.chain_pos, error=e.error)
            )


def _failed(db: Database, sink: str, error: str) -> None:
    with db.session() as session:
        row = session.get(AuditSinkCursor, sink) or AuditSinkCursor(sink=sink, last_pos=0)
        row.failures = (row.failures or 0) + 1
        row.last_error, row.updated_at = error[:2000], utcnow()
        session.add(row)


class FileSink:
    """ECS JSON lines appended to a file (for Filebeat); fsynced per batch."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def prepare(self) -> None:
        """The folder, and no torn last line (a crash mid-write) to append after."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.path.open("rb+") as handle:
                size = handle.seek(0, os.SEEK_END)
                keep = size
                while keep > 0:
                    step = min(4096, keep)
                    handle.seek(keep - step)
                    chunk = handle.read(step)
                    newline = chunk.rfind(b"\n")
                    if newline != -1:
                        keep = keep - step + newline + 1
                        break
                    keep -= step
                if keep != size:
                    handle.truncate(keep)
        except FileNotFoundError:
            pass

    def resume_after(self) -> int | None:
        last = _last_line(self.path)
        if not last:
            return None
        try:
            return int(json.loads(last)["event"]["sequence"])
        except (ValueError, KeyError, TypeError):
            return None

    def send(self, docs: Sequence[tuple[str, int, dict[str, Any]]]) -> list[Refused]:
        lines = "".join(
            json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n" for _, _, doc in docs
        )
        try:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise ShippingError(f"cannot write {self.path}: {exc.strerror}") from None
        return []


def _last_line(path: Path) -> str | None:
    """The file's last complete line, read from its end (the file can be any size)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            chunk = b""
            while end > 0 and chunk.count(b"\n") < 2:
                step = min(4096, end)
                end -= step
                handle.seek(end)
                chunk = handle.read(step) + chunk
    except FileNotFoundError:
        return None
    if not chunk.endswith(b"\n"):  # a torn last line is not trusted (prepare drops it)
        chunk = chunk[: chunk.rfind(b"\n") + 1]
    lines = [line for line in chunk.split(b"\n") if line.strip()]
    return lines[-1].decode("utf-8", "replace") if lines else None
