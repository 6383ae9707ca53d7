"""The audit pipeline's steps as the worker and the CLI run them: seal, checkpoint, ship.

Sealing and checkpoints are cheap and always on. Shipping goes to the JSON-lines file
(always) and to Elasticsearch (when ``elasticsearch_url`` is set). One shipper per sink at
a time (a PostgreSQL advisory lock, or a file lock for the embedded default); a sink that
failed is tried again after a back-off that doubles with each failure (up to 5 minutes),
while its backlog waits in the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select, text

from appliance.audit import chain
from appliance.audit.checkpoints import Checkpoint, Signer, write_checkpoint
from appliance.audit.shipping import FileSink, Shipped, Sink, ship
from appliance.config import Settings
from appliance.db import Database
from appliance.models import AuditCheckpoint, AuditSinkCursor, utcnow

MAX_BACKOFF_S = 300


def sinks(settings: Settings) -> list[Sink]:
    """The sinks ``settings`` configure: the JSON-lines file, and Elasticsearch if set."""
    found: list[Sink] = [FileSink(settings.effective_audit_jsonl_file)]
    if settings.elasticsearch_url:
        from appliance.audit.elastic import ElasticsearchSink, client_from_settings

        key = settings.elasticsearch_api_key
        client = client_from_settings(
            settings.elasticsearch_url,
            api_key=key.get_secret_value() if key else None,
            ca_certs=str(settings.elasticsearch_ca_certs)
            if settings.elasticsearch_ca_certs
            else None,
        )
        found.append(
            ElasticsearchSink(
                client, settings.audit_data_stream, retention_days=settings.audit_retention_days
            )
        )
    return found


def seal_and_checkpoint(
    db: Database, settings: Settings, master_key: bytes
) -> tuple[chain.Sealed, Checkpoint | None]:
    """Seal what is unsealed; sign a checkpoint when the last one is older than the interval
    (``settings.audit_checkpoint_interval_s``), with the key derived from ``master_key``."""
    sealed = chain.seal(db)
    checkpoint = None
    if _checkpoint_due(db, settings):
        checkpoint = write_checkpoint(db, Signer(master_key))
    return sealed, checkpoint


def ship_all(
    db: Database, settings: Settings, *, only: str | None = None, wait_for_backoff: bool = True
) -> list[Shipped]:
    """Ship to every sink (or ``only`` one) whose back-off has passed and that no other
    shipper holds; raises ShippingError for a sink that fails (recorded for back-off)."""
    done = []
    for sink in sinks(settings):
        if only is not None and sink.name != only:
            continue
        if wait_for_backoff and _backing_off(db, sink.name):
            continue
        with sink_lock(db, settings, sink.name) as mine:
            if mine:
                done.append(ship(db, sink, batch=settings.audit_ship_batch))
    return done


@contextlib.contextmanager
def sink_lock(db: Database, settings: Settings, sink: str) -> Iterator[bool]:
    """True if this process now ships to ``sink`` alone (released on exit)."""
    if db.url.startswith("postgresql"):
        key = int.from_bytes(hashlib.sha256(f"audit-sink:{sink}".encode()).digest()[:8], "big")
        key -= 1 << 63  # a signed bigint
        with db.engine.connect() as conn:
            mine = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
            try:
                yield mine
            finally:
                if mine:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    path = settings.run_dir / f"audit-ship-{sink}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _backing_off(db: Database, sink: str) -> bool:
    with db.session() as session:
        cursor = session.get(AuditSinkCursor, sink)
    if cursor is None or not cursor.failures:
        return False
    wait = min(MAX_BACKOFF_S, 2 ** min(cursor.failures, 16))
    return utcnow() < cursor.updated_at + timedelta(seconds=wait)


def _checkpoint_due(db: Database, settings: Settings) -> bool:
    with db.session() as session:
        last = session.scalar(
            select(AuditCheckpoint.created_at).order_by(AuditCheckpoint.id.desc()).limit(1)
        )
    interval = timedelta(seconds=settings.audit_checkpoint_interval_s)
    return last is None or utcnow() - last >= interval
