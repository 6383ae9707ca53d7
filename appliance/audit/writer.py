"""Group commit of API audit events: one background writer, one transaction per batch.

Every API call is audited, so at hundreds of calls a second one transaction per event
costs more than the call itself. The writer takes the events that arrive within
``linger_s`` of the first one (up to ``max_batch``) and inserts them in one statement
and one commit.
Events keep their order of submission (``seq`` follows it). The queue is bounded: when
it is full the submitter writes its event itself (backpressure, never unbounded memory).
A batch the database refuses is retried; pending events are flushed at exit.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, insert, update

from appliance.db import Database
from appliance.models import ApiKey, AuditEvent, utcnow

log = logging.getLogger(__name__)

_STOP = object()
EVENTS_TABLE = cast(Table, AuditEvent.__table__)


class AuditWriter:
    """Batches audit rows (``event_row``'s, all alike) into the database from one thread.

    A key's ``last_used_at`` is refreshed with its events, at most once per
    ``key_touch_interval_s`` by this process: a last-use time to the minute, not a
    write per call.
    """

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 500,
        linger_s: float = 0.0,
        max_pending: int = 10_000,
        key_touch_interval_s: float = 60.0,
        retries: int = 3,
        retry_delay_s: float = 0.5,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._touch_interval_s = key_touch_interval_s
        self._touched: dict[int, float] = {}
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._on_dropped = on_dropped
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    def submit(self, row: dict[str, Any], key_id: int | None = None) -> None:
        """Queue one event; written by the background thread, or now if the queue is full."""
        if not self._closed:
            self._ensure_started()
            try:
                self._queue.put_nowait((row, key_id))
                return
            except queue.Full:
                pass
        self._write_with_retries([(row, key_id)])

    def close(self, timeout_s: float = 30.0) -> None:
        """Write every pending event, then stop the thread."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout_s)

    def _ensure_started(self) -> None:
        # Started on first use, in the process that writes (a gunicorn worker, not its master).
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self._linger_s
            while len(batch) < self._max_batch and batch[-1] is not _STOP:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
                batch += self._drain()
            if batch:
                self._write_with_retries(batch)

    def _drain(self) -> list[Any]:
        rest: list[Any] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return [item for item in rest if item is not _STOP]
            rest.append(item)

    def _write_with_retries(self, batch: list[tuple[dict[str, Any], int | None]]) -> None:
        for attempt in range(1, self._retries + 1):
            try:
                self._write(batch)
                return
            except Exception:
                log.exception(
                    "could not write %d audit events (attempt %d of %d)",
                    len(batch),
                    attempt,
                    self._retries,
                )
                time.sleep(self._retry_delay_s * attempt)
        lost = ", ".join(str(row.get("request_id")) for row, _ in batch)
        log.error("LOST %d audit events; request ids: %s", len(batch), lost)
        if self._on_dropped is not None:
            self._on_dropped(len(batch))

    def _write(self, batch: list[tuple[dict[str, Any], int | None]]) -> None:
        now = time.monotonic()
        due = {
            key_id
            for _, key_id in batch
            if key_id is not None
            and now - self._touched.get(key_id, -self._touch_interval_s) >= self._touch_interval_s
        }
        with self._db.session() as session:
            # Core, not the ORM's bulk path: one multi-row INSERT, a fraction of the CPU.
            session.execute(insert(EVENTS_TABLE), [row for row, _ in batch])
            if due:
                session.execute(
                    update(ApiKey).where(ApiKey.id.in_(due)).values(last_used_at=utcnow())
                )
        for key_id in due:
            self._touched[key_id] = now
