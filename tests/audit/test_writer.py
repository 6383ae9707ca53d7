"""The audit writer's group commit, on the real PostgreSQL database."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event, select

from appliance.audit.events import AuditAction, RequestContext, event_row
from appliance.audit.writer import AuditWriter
from appliance.auth.api_keys import create_api_key
from appliance.auth.users import create_user
from appliance.models import ApiKey, AuditEvent
from appliance.services import Services
from tests import timing
from tests.conftest import unique


def rows(tag: str, count: int) -> list[dict[str, Any]]:
    return [
        event_row(
            AuditAction.API_CHAT_COMPLETION,
            actor=tag,
            context=RequestContext(request_id=f"{tag}-{i}"),
            status_code=200,
            model="m",
            finish_reason="stop",
        )
        for i in range(count)
    ]


def events_of(services: Services, tag: str) -> list[AuditEvent]:
    with services.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.actor == tag).order_by(AuditEvent.seq)
        return list(session.scalars(query))


def count_inserts(services: Services) -> tuple[list[int], Any]:
    inserts: list[int] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO audit_events"):
            inserts.append(1)

    event.listen(services.db.engine, "before_cursor_execute", on_execute)
    return inserts, on_execute


def test_waiting_events_are_written_together_in_order(pg_services: Services) -> None:
    tag = unique("batch")
    writer = AuditWriter(pg_services.db, max_batch=500)
    inserts, listener = count_inserts(pg_services)
    gate = threading.Lock()
    gate.acquire()
    real_write = writer._write

    def held_write(batch: list[Any]) -> None:  # the first write waits: the rest pile up
        with gate:
            real_write(batch)

    writer._write = held_write  # type: ignore[method-assign]
    try:
        for row in rows(tag, 200):
            writer.submit(row)
        gate.release()
        writer.close()
    finally:
        event.remove(pg_services.db.engine, "before_cursor_execute", listener)
    written = events_of(pg_services, tag)
    assert [e.request_id for e in written] == [f"{tag}-{i}" for i in range(200)]
    assert written[0].details == {"finish_reason": "stop"} and written[0].status_code == 200
    assert len(inserts) <= 3  # 200 events, a first lone one and one or two batches


def test_a_full_queue_makes_the_submitter_write_itself(pg_services: Services) -> None:
    tag = unique("full")
    writer = AuditWriter(pg_services.db, max_pending=1)
    gate = threading.Event()
    real_write = writer._write

    def background_held(batch: list[Any]) -> None:
        if threading.current_thread().name == "audit-writer":
            gate.wait(timing.scaled(10))
        real_write(batch)

    writer._write = background_held  # type: ignore[method-assign]
    first, second, third = rows(tag, 3)
    writer.submit(first)  # taken by the thread, which is held
    deadline = timing.deadline(5)
    while not writer._queue.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.submit(second)  # fills the queue
    writer.submit(third)  # no room: written by the submitter, now
    assert [e.request_id for e in events_of(pg_services, tag)] == [f"{tag}-2"]
    gate.set()
    writer.close()
    assert len(events_of(pg_services, tag)) == 3


def test_close_flushes_and_later_events_are_written_inline(pg_services: Services) -> None:
    tag = unique("close")
    writer = AuditWriter(pg_services.db)
    first, second = rows(tag, 2)
    writer.submit(first)
    writer.close()
    writer.submit(second)
    assert len(events_of(pg_services, tag)) == 2


def test_refused_batches_are_retried_then_counted_as_lost(pg_services: Services) -> None:
    lost: list[int] = []
    writer = AuditWriter(pg_services.db, retries=2, retry_delay_s=0.01, on_dropped=lost.append)
    bad = rows(unique("bad"), 1)[0] | {"action": "x" * 100}  # longer than the column
    writer.submit(bad)
    writer.close()
    assert lost == [1]


def test_key_last_used_is_refreshed_at_most_once_per_interval(pg_services: Services) -> None:
    with pg_services.db.session() as session:
        user, _ = create_user(session, unique("touch"), ["app"])
        key_id = create_api_key(session, user, "k").key.id
    writer = AuditWriter(pg_services.db, key_touch_interval_s=3600)
    writer.submit(rows(unique("t"), 1)[0], key_id=key_id)
    writer.close()
    with pg_services.db.session() as session:
        first = session.get(ApiKey, key_id).last_used_at
    assert first is not None
    again = AuditWriter(pg_services.db, key_touch_interval_s=3600)
    again._touched[key_id] = time.monotonic()  # touched a moment ago
    again.submit(rows(unique("t"), 1)[0], key_id=key_id)
    again.close()
    with pg_services.db.session() as session:
        assert session.get(ApiKey, key_id).last_used_at == first
