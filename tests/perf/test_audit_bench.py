"""Audit benchmark, in one run: what auditing adds to the gateway (events on, with sealing
and shipping running, against events off), and the rates of sealing, verifying and
shipping (to the Elasticsearch stand-in and to the JSON-lines file). Prints a table.

Targets (issue 7): audit adds at most 10% to the gateway's added latency; sealing at
least 20 000 events/s; verify at least 100 000 events/s.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from appliance.audit import chain, shipping
from appliance.audit.checkpoints import Signer
from appliance.audit.elastic import ElasticsearchSink, client_from_settings
from appliance.audit.events import AuditAction, event_row
from appliance.audit.verify import verify
from appliance.services import Services, build_services
from tests.audit.es_standin import ElasticsearchStandIn
from tests.conftest import make_settings, scratch_services
from tests.perf.conftest import Target, running_gateway
from tests.perf.test_gateway_overhead import latencies_ms, percentile

pytestmark = pytest.mark.perf
EVENTS = 200_000
ROUNDS, PER_ROUND = 3, 400


@pytest.fixture()
def bench_services(tmp_path: Path) -> Iterator[Services]:
    with scratch_services(tmp_path / "home", "appliance_bench") as services:
        yield services


def api_like_rows(count: int) -> list[dict]:
    return [
        event_row(
            AuditAction.API_CHAT_COMPLETION,
            actor=f"app-{i % 50}",
            actor_roles="app",
            api_key_prefix="sk-app-abcd1234",
            status_code=200,
            model="fast",
            prompt_tokens=12,
            completion_tokens=30,
            duration_ms=1.7,
            finish_reason="stop",
            privacy={"input": {"CN_PHONE": {"pseudonymize": 1}}},
        )
        for i in range(count)
    ]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def test_audit_pipeline_rates(bench_services: Services, tmp_path: Path) -> None:
    services = bench_services
    rows = api_like_rows(EVENTS)
    with services.db.session() as session:
        for i in range(0, EVENTS, 10_000):
            session.execute(insert(chain.EVENTS), rows[i : i + 10_000])
    started = time.perf_counter()
    sealed = chain.seal(services.db)
    seal_s = time.perf_counter() - started
    started = time.perf_counter()
    report = verify(services.db, Signer(services.master_key).public)
    verify_s = time.perf_counter() - started
    standin = ElasticsearchStandIn()
    try:
        sink = ElasticsearchSink(client_from_settings(standin.url), "logs-appliance.audit-bench")
        started = time.perf_counter()
        es = shipping.ship(services.db, sink, batch=2000)
        es_s = time.perf_counter() - started
    finally:
        standin.stop()
    started = time.perf_counter()
    file = shipping.ship(services.db, shipping.FileSink(tmp_path / "audit.jsonl"), batch=2000)
    file_s = time.perf_counter() - started
    assert sealed.events == EVENTS + 1 and report.ok and report.events == EVENTS + 1
    assert es.events == file.events == EVENTS + 1 and es.refused == 0
    print()
    print(f"{'audit pipeline, ' + str(EVENTS) + ' events':40} {'events/s':>12} {'target':>10}")
    print(
        f"{'seal (hash chain, PostgreSQL)':40} {rate(sealed.events, seal_s):12,.0f} {'20,000':>10}"
    )
    print(f"{'verify (recompute all)':40} {rate(report.events, verify_s):12,.0f} {'100,000':>10}")
    print(f"{'ship to Elasticsearch (stand-in), bulk':40} {rate(es.events, es_s):12,.0f}")
    print(f"{'ship to the JSON-lines file':40} {rate(file.events, file_s):12,.0f}")


def test_what_auditing_adds_to_the_gateway(
    pg_url: str, upstream: Target, tmp_path_factory: pytest.TempPathFactory
) -> None:
    standin = ElasticsearchStandIn()
    home = tmp_path_factory.mktemp("audit-on")
    with (
        running_gateway(pg_url, upstream, home, "audit-on") as on,
        running_gateway(
            pg_url, upstream, tmp_path_factory.mktemp("audit-off"), "audit-off",
            audit_api_calls="false",
        ) as off,
    ):  # fmt: skip
        services = build_services(
            make_settings(home, database_url=pg_url, elasticsearch_url=standin.url)
        )
        stop = threading.Event()

        def pipeline() -> None:  # what the Celery worker does, at its beat
            from appliance.audit import service

            while not stop.wait(0.5):
                service.seal_and_checkpoint(services.db, services.settings, services.master_key)
                service.ship_all(services.db, services.settings, wait_for_backoff=False)

        worker = threading.Thread(target=pipeline, daemon=True)
        worker.start()
        samples: dict[str, list[float]] = {"direct": [], "audit-off": [], "audit-on": []}
        try:
            for _ in range(ROUNDS):  # interleaved, so drift hits every target alike
                for target in (upstream, off, on):
                    samples[target.name].extend(latencies_ms(target, PER_ROUND))
        finally:
            stop.set()
            worker.join(10)
            services.db.dispose()
            standin.stop()
    p50 = {name: statistics.median(values) for name, values in samples.items()}
    p99 = {name: percentile(values, 0.99) for name, values in samples.items()}
    added_off = p50["audit-off"] - p50["direct"]
    added_on = p50["audit-on"] - p50["direct"]
    share = (added_on - added_off) / added_off * 100 if added_off > 0 else float("nan")
    print()
    print(f"{'gateway, sequential requests':32} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10}")
    for name in ("direct", "audit-off", "audit-on"):
        added = p50[name] - p50["direct"]
        print(f"{name:32} {p50[name]:8.3f} {p99[name]:8.3f} {added:10.3f}")
    print(f"audit's share of the gateway's added p50 latency: {share:+.1f}% (target <= 10%)")
    assert len(standin.documents("logs-appliance.audit-default")) > 0  # it did ship
