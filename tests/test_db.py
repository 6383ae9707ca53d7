"""The database layer on both backends: migrations, models, constraints, timezones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from appliance import migrations
from appliance.auth.api_keys import authenticate_api_key, create_api_key
from appliance.auth.users import create_user
from appliance.db import make_engine
from appliance.errors import InvalidRequest
from appliance.models import ApiKey, AuditEvent, Base, Model, Upstream, User
from appliance.services import Services
from tests.conftest import PG_ADMIN_DSN, make_settings

# Both real backends: SQLite is the embedded default, PostgreSQL the production database.
EMBEDDED = "sqlite"
PRODUCTION = "postgresql"
BACKENDS = [EMBEDDED, PRODUCTION]
SERVICES_FIXTURE = {
    EMBEDDED: "sqlite_services",
    PRODUCTION: "pg_services",
}

TABLES = {
    "model_aliases",
    "alias_targets",
    "users",
    "roles",
    "user_roles",
    "api_keys",
    "models",
    "upstreams",
    "audit_events",
    "service_heartbeats",
    "policy_in_force",
    "privacy_conversations",
    "audit_chain_head",
    "audit_checkpoints",
    "audit_sink_cursors",
    "finetune_datasets",
    "finetune_records",
    "finetune_runs",
    "finetune_locks",
    "audit_ship_errors",
    "portal_settings",
    "portal_sessions",
    "login_throttles",
    "alembic_version",
}


# The model registry's columns: what the API routes by, and (0010) how vLLM serves each.
MODEL_COLUMNS = {"id", "name", "kind", "path", "served_name", "enabled", "created_at"}
VLLM_COLUMNS = {
    "tool_call_parser",
    "enable_auto_tool_choice",
    "reasoning_parser",
    "chat_template",
    "max_model_len",
    "guided_decoding_backend",
}


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == EMBEDDED:
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    name = f"appliance_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_upgrade_downgrade_and_match_the_models(empty_db_url: str) -> None:
    migrations.upgrade(empty_db_url)
    migrations.upgrade(empty_db_url)  # idempotent
    engine = make_engine(empty_db_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        migrations.downgrade(empty_db_url, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        migrations.upgrade(empty_db_url)
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_migration_0010_adds_the_vllm_options_and_keeps_registered_models(
    empty_db_url: str,
) -> None:
    migrations.upgrade(empty_db_url, "0009")
    engine = make_engine(empty_db_url)
    try:
        assert {c["name"] for c in inspect(engine).get_columns("models")} == MODEL_COLUMNS
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO models (name, kind, served_name, enabled, created_at) "
                    "VALUES ('deepseek-r1-32b', 'openai', 'deepseek-r1-32b', :t, :now)"
                ),
                {"t": True, "now": datetime.now(UTC)},
            )
        migrations.upgrade(empty_db_url)
        columns = {c["name"]: c for c in inspect(engine).get_columns("models")}
        assert set(columns) == MODEL_COLUMNS | VLLM_COLUMNS
        assert not columns["enable_auto_tool_choice"]["nullable"]
        assert all(columns[name]["nullable"] for name in VLLM_COLUMNS - {"enable_auto_tool_choice"})
        with engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT name, {', '.join(sorted(VLLM_COLUMNS))} FROM models")  # noqa: S608
            ).one()
        # A model registered before keeps serving as it did: no flag.
        assert row.name == "deepseek-r1-32b" and row.enable_auto_tool_choice in (False, 0)
        assert all(getattr(row, n) is None for n in VLLM_COLUMNS - {"enable_auto_tool_choice"})
        migrations.downgrade(empty_db_url, "0009")
        assert {c["name"] for c in inspect(engine).get_columns("models")} == MODEL_COLUMNS
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM models")).scalars().all() == [
                "deepseek-r1-32b"
            ]
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def services(request: pytest.FixtureRequest) -> Services:
    name = SERVICES_FIXTURE[request.param]
    return request.getfixturevalue(name)


def test_models_round_trip_with_utc_datetimes(services: Services) -> None:
    suffix = uuid.uuid4().hex[:6]
    with services.db.session() as session:
        user, _ = create_user(session, f"rt-{suffix}", ["developer", "app"])
        new = create_api_key(session, user, "k", models="tiny-*", expires_days=2)
        session.add(
            Model(
                name=f"m-{suffix}",
                kind="openai",
                served_name="s",
                upstreams=[Upstream(url="http://a"), Upstream(url="http://b")],
            )
        )
        session.add(
            AuditEvent(
                action="api.request",
                outcome="success",
                category="api",
                details={"text": "中文 ok", "n": [1, 2]},
            )
        )
    with services.db.session() as session:
        loaded = session.scalar(select(User).where(User.username == f"rt-{suffix}"))
        assert loaded.role_names == ["app", "developer"]
        key = authenticate_api_key(session, new.plaintext)
        assert key.user.username == loaded.username
        assert key.expires_at.tzinfo is not None
        assert timedelta(days=1) < key.expires_at - datetime.now(UTC) <= timedelta(days=2)
        model = session.scalar(select(Model).where(Model.name == f"m-{suffix}"))
        assert [u.url for u in model.upstreams] == ["http://a", "http://b"]
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert event.details == {"text": "中文 ok", "n": [1, 2]}
        assert event.timestamp.tzinfo is not None and len(event.event_id) == 36


def test_only_the_key_hash_is_stored(services: Services) -> None:
    with services.db.session() as session:
        user, _ = create_user(session, f"h-{uuid.uuid4().hex[:6]}", ["app"])
        new = create_api_key(session, user, "k")
    with services.db.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.id == new.key.id))
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert not any(new.plaintext in value for value in stored)
    assert new.plaintext.startswith(row.prefix)


def test_constraints_hold_and_services_refuse_duplicates(services: Services) -> None:
    name = f"dup-{uuid.uuid4().hex[:6]}"
    with services.db.session() as session:
        create_user(session, name, ["app"])
    with pytest.raises(InvalidRequest, match="already exists"), services.db.session() as session:
        create_user(session, name, ["app"])
    with pytest.raises(IntegrityError), services.db.session() as session:
        session.add(User(username=name))
    with pytest.raises(InvalidRequest, match="unknown role 'wizard'"), services.db.session() as s:
        create_user(s, f"{name}-x", ["wizard"])
    with services.db.session() as session:  # nothing half-written
        assert session.scalar(select(User).where(User.username == f"{name}-x")) is None


def test_naive_datetimes_are_refused(sqlite_services: Services) -> None:
    with pytest.raises(Exception, match="naive datetime"), sqlite_services.db.session() as s:
        s.add(
            AuditEvent(
                action="a", outcome="success", category="api", timestamp=datetime(2026, 1, 1)
            )
        )


def test_sqlite_is_the_embedded_default(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'appliance.db'}"
