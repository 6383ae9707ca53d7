"""Audit lag gauges, read from the database at scrape time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from appliance.audit import chain, shipping
from appliance.audit.checkpoints import Signer, write_checkpoint
from appliance.audit.metrics import AuditLagCollector
from appliance.db import Database
from appliance.services import Services
from tests.audit.test_chain import add_events


def scrape(db: Database) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(AuditLagCollector(db))
    values = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_backlog_and_chain_are_reported(fresh: Services, tmp_path: Path) -> None:
    add_events(fresh, 10)
    assert scrape(fresh.db)["appliance_audit_unsealed_events"] == 11
    chain.seal(fresh.db)
    write_checkpoint(fresh.db, Signer(fresh.master_key))
    shipping.ship(fresh.db, shipping.FileSink(tmp_path / "a.jsonl"), batch=4, max_batches=1)
    values = scrape(fresh.db)
    assert values["appliance_audit_up"] == 1
    assert values["appliance_audit_unsealed_events"] == 0
    assert values["appliance_audit_chain_length"] == 11
    assert values['appliance_audit_sink_lag_events{sink="file"}'] == 7
    assert 0 <= values["appliance_audit_checkpoint_age_seconds"] < 60


def test_an_unreachable_database_reports_down(tmp_path: Path) -> None:
    from appliance.config import load_settings

    db = Database(
        load_settings(home=str(tmp_path), database_url="postgresql+psycopg://x@127.0.0.1:1/none")
    )
    assert scrape(db) == {"appliance_audit_up": 0.0}
    db.dispose()
