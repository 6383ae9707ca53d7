"""Shipping to Elasticsearch (a stand-in, or a real one) and to the JSON-lines file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from appliance.audit import chain, shipping
from appliance.audit.elastic import ElasticsearchSink, client_from_settings
from appliance.audit.shipping import FileSink, ShippingError
from appliance.models import AuditSinkCursor
from appliance.services import Services
from tests.audit.es_standin import ElasticsearchStandIn
from tests.audit.test_chain import add_events

STREAM = "logs-appliance.audit-test"


@pytest.fixture()
def standin() -> Iterator[ElasticsearchStandIn]:
    server = ElasticsearchStandIn()
    yield server
    server.stop()


def sink_for(url: str) -> ElasticsearchSink:
    return ElasticsearchSink(client_from_settings(url), STREAM)


def sealed_events(services: Services, count: int) -> None:
    add_events(services, count)
    chain.seal(services.db)


def sequences(docs: list[dict]) -> list[int]:
    return [d["event"]["sequence"] for d in docs]


def test_events_arrive_once_in_order_with_template_and_policy(
    fresh: Services, standin: ElasticsearchStandIn
) -> None:
    sealed_events(fresh, 120)
    sink = sink_for(standin.url)
    done = shipping.ship(fresh.db, sink, batch=50)
    assert (done.events, done.refused, done.cursor) == (121, 0, 121)
    docs = standin.documents(STREAM)
    assert sequences(docs) == list(range(1, 122))
    assert docs[5]["event"]["action"] == "admin.key.create" and docs[5]["user"]["name"] == "t-4"
    assert standin.received.bulk_requests == 3
    template = standin.received.templates["appliance-audit"]
    assert template["data_stream"] == {} and template["index_patterns"] == [
        "logs-appliance.audit-*"
    ]
    assert template["template"]["settings"]["index.lifecycle.name"] == "appliance-audit"
    assert "delete" in standin.received.policies["appliance-audit"]["policy"]["phases"]
    assert shipping.ship(fresh.db, sink).events == 0  # nothing new
    assert shipping.lag(fresh.db, "elasticsearch") == 0


def test_an_unreachable_cluster_keeps_the_backlog_and_loses_nothing(
    fresh: Services, standin: ElasticsearchStandIn
) -> None:
    sealed_events(fresh, 30)
    standin.stop()
    with pytest.raises(ShippingError, match="Elasticsearch"):
        shipping.ship(fresh.db, sink_for(standin.url))
    with fresh.db.session() as session:
        cursor = session.get(AuditSinkCursor, "elasticsearch")
        assert cursor is not None and cursor.failures == 1 and cursor.last_pos == 0
    assert shipping.lag(fresh.db, "elasticsearch") == 31
    standin.start()
    assert shipping.ship(fresh.db, sink_for(standin.url)).events == 31
    assert sequences(standin.documents(STREAM)) == list(range(1, 32))


def test_a_batch_sent_again_after_a_crash_is_stored_once(
    fresh: Services, standin: ElasticsearchStandIn
) -> None:
    sealed_events(fresh, 40)
    shipping.ship(fresh.db, sink_for(standin.url))
    with fresh.db.session() as session:  # as if the worker died before moving its cursor
        session.execute(update(AuditSinkCursor).values(last_pos=10))
    assert shipping.ship(fresh.db, sink_for(standin.url)).events == 31
    assert standin.received.conflicts == 31
    assert sequences(standin.documents(STREAM)) == list(range(1, 42))


def test_refused_documents_are_kept_and_can_be_sent_again(
    fresh: Services, standin: ElasticsearchStandIn
) -> None:
    sealed_events(fresh, 10)
    refused = {chain_event_id(fresh, 3), chain_event_id(fresh, 7)}
    standin.refuse_ids = set(refused)
    done = shipping.ship(fresh.db, sink_for(standin.url))
    assert (done.events, done.refused) == (11, 2)
    errors = shipping.refused_events(fresh.db, "elasticsearch")
    assert {e.event_id for e in errors} == refused
    assert all("refused by the stand-in" in e.error for e in errors)
    standin.refuse_ids = set()
    again = shipping.resend_refused(fresh.db, sink_for(standin.url))
    assert (again.events, again.refused) == (2, 0)
    assert shipping.refused_events(fresh.db, "elasticsearch") == []
    assert sorted(sequences(standin.documents(STREAM))) == list(range(1, 12))


def chain_event_id(services: Services, pos: int) -> str:
    from sqlalchemy import select

    with services.db.session() as session:
        return str(
            session.scalar(select(chain.EVENTS.c.event_id).where(chain.EVENTS.c.chain_pos == pos))
        )


def test_the_file_sink_writes_each_event_once_even_after_a_torn_write(
    fresh: Services, tmp_path: Path
) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    sealed_events(fresh, 20)
    assert shipping.ship(fresh.db, FileSink(path), batch=7).events == 21
    with fresh.db.session() as session:  # the process died after writing, before its cursor
        session.execute(update(AuditSinkCursor).values(last_pos=5))
    with path.open("a") as out:
        out.write('{"event": {"sequence": 2')  # ...and in the middle of a line
    sealed_events(fresh, 3)
    assert shipping.ship(fresh.db, FileSink(path)).events == 3
    lines = path.read_text().splitlines()
    assert [json.loads(line)["event"]["sequence"] for line in lines] == list(range(1, 25))


@pytest.mark.skipif(not os.environ.get("APPLIANCE_TEST_ES_URL"), reason="no real Elasticsearch")
def test_against_a_real_elasticsearch(fresh: Services) -> None:
    url = os.environ["APPLIANCE_TEST_ES_URL"]
    sealed_events(fresh, 50)
    sink = ElasticsearchSink(client_from_settings(url), f"logs-appliance.audit-t{os.getpid()}")
    assert shipping.ship(fresh.db, sink).refused == 0
    sink.client.indices.refresh(index=sink.data_stream)
    assert sink.client.count(index=sink.data_stream)["count"] == 51
