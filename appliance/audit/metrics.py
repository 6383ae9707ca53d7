"""Audit lag as Prometheus gauges, read from the database at each scrape.

Served with the API's metrics (the gunicorn master's internal port): events not sealed yet,
the chain's length, each sink's backlog and refused documents, the last checkpoint's age.
A scrape that cannot reach the database reports ``appliance_audit_up 0`` and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from appliance.audit import chain
from appliance.db import Database
from appliance.models import AuditCheckpoint, AuditShipError, AuditSinkCursor, utcnow

log = logging.getLogger(__name__)


class AuditLagCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("appliance_audit_up", "1 if the audit state could be read.")
        try:
            gauges = list(self._gauges())
        except Exception:
            log.exception("could not read the audit state for the metrics")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges

    def _gauges(self) -> Iterator[GaugeMetricFamily]:
        with self.db.session() as session:
            unsealed = session.scalar(
                select(func.count()).where(chain.EVENTS.c.chain_pos.is_(None))
            )
            top = session.scalar(select(func.max(chain.EVENTS.c.chain_pos))) or 0
            cursors = {c.sink: c for c in session.scalars(select(AuditSinkCursor))}
            refused = dict(
                session.execute(
                    select(AuditShipError.sink, func.count()).group_by(AuditShipError.sink)
                ).all()
            )
            last_checkpoint = session.scalar(select(func.max(AuditCheckpoint.created_at)))
        yield _gauge("appliance_audit_unsealed_events", "Events not sealed into the chain yet.",
                     unsealed or 0)  # fmt: skip
        yield _gauge("appliance_audit_chain_length", "Events sealed into the chain.", top)
        lag = GaugeMetricFamily(
            "appliance_audit_sink_lag_events", "Sealed events a sink does not have yet.",
            labels=["sink"],
        )  # fmt: skip
        failures = GaugeMetricFamily(
            "appliance_audit_sink_failures", "Consecutive failed attempts of a sink.",
            labels=["sink"],
        )  # fmt: skip
        errors = GaugeMetricFamily(
            "appliance_audit_sink_refused_documents", "Documents a sink refused (kept).",
            labels=["sink"],
        )  # fmt: skip
        for sink, cursor in sorted(cursors.items()):
            lag.add_metric([sink], max(0, top - cursor.last_pos))
            failures.add_metric([sink], cursor.failures)
            errors.add_metric([sink], refused.get(sink, 0))
        yield from (lag, failures, errors)
        if last_checkpoint is not None:
            age = (utcnow() - last_checkpoint).total_seconds()
            yield _gauge("appliance_audit_checkpoint_age_seconds",
                         "Seconds since the last signed checkpoint.", age)  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation)
    gauge.add_metric([], value)
    return gauge
