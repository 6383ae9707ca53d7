"""`make run`'s demo API key: kept in $APPLIANCE_HOME/demo-api-key (0600), reused while it is
valid, replaced when it is revoked, expired, its user is gone or its file is not private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from appliance.auth.api_keys import authenticate_api_key, revoke_api_key
from appliance.auth.users import create_user, deactivate
from appliance.bootstrap import DEMO_KEY_FILE, demo_key_path, ensure_demo_key
from appliance.models import ApiKey, AuditEvent, User, utcnow
from appliance.services import Services


def key_count(services: Services) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count(ApiKey.id))) or 0)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_is_created_once_then_reused(sqlite_services: Services) -> None:
    first = ensure_demo_key(sqlite_services)
    assert first.created
    path = demo_key_path(sqlite_services)
    assert path == sqlite_services.settings.home / DEMO_KEY_FILE
    assert path.read_text() == first.plaintext + "\n"
    assert mode_of(path) == 0o600
    with sqlite_services.db.session() as session:
        key = authenticate_api_key(session, first.plaintext)
        assert key.user.username == "admin"
        assert key.expires_at is not None
        assert timedelta(hours=23) < key.expires_at - utcnow() <= timedelta(days=1)
        created = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "admin.key.create")
        ).all()
        assert [e.target for e in created] == [first.prefix]

    again = ensure_demo_key(sqlite_services)
    assert not again.created
    assert again.plaintext == first.plaintext
    assert key_count(sqlite_services) == 1


def test_a_revoked_key_is_replaced(sqlite_services: Services) -> None:
    first = ensure_demo_key(sqlite_services)
    with sqlite_services.db.session() as session:
        revoke_api_key(session, first.prefix)
    second = ensure_demo_key(sqlite_services)
    assert second.created and second.plaintext != first.plaintext
    assert demo_key_path(sqlite_services).read_text().strip() == second.plaintext
    assert mode_of(demo_key_path(sqlite_services)) == 0o600
    with sqlite_services.db.session() as session:
        authenticate_api_key(session, second.plaintext)


def test_an_expired_or_nearly_expired_key_is_replaced(sqlite_services: Services) -> None:
    first = ensure_demo_key(sqlite_services)
    assert first.expires_at is not None
    # Expired a minute ago.
    expired = ensure_demo_key(sqlite_services, now=first.expires_at + timedelta(minutes=1))
    assert expired.created and expired.plaintext != first.plaintext
    # Still valid, but for less than an hour: a demo would fail half way through.
    assert expired.expires_at is not None
    soon = ensure_demo_key(sqlite_services, now=expired.expires_at - timedelta(minutes=30))
    assert soon.created and soon.plaintext != expired.plaintext
    assert key_count(sqlite_services) == 3


def test_a_key_whose_user_is_gone_or_disabled_is_replaced(sqlite_services: Services) -> None:
    with sqlite_services.db.session() as session:
        create_user(session, "demo-owner", ["developer"])
    first = ensure_demo_key(sqlite_services, "demo-owner")
    with sqlite_services.db.session() as session:
        user = session.scalar(select(User).where(User.username == "demo-owner"))
        assert user is not None
        deactivate(user, "admin")
    assert ensure_demo_key(sqlite_services, "admin").created  # another user's key: not reused
    second = ensure_demo_key(sqlite_services, "admin")
    assert not second.created
    with sqlite_services.db.session() as session:
        session.delete(session.scalar(select(User).where(User.username == "admin")))
        create_user(session, "admin", ["admin"])
    third = ensure_demo_key(sqlite_services, "admin")  # its user was deleted (and recreated)
    assert third.created and third.plaintext not in (first.plaintext, second.plaintext)


def test_a_key_in_a_file_others_can_read_is_revoked_and_replaced(
    sqlite_services: Services,
) -> None:
    first = ensure_demo_key(sqlite_services)
    path = demo_key_path(sqlite_services)
    path.chmod(0o644)
    second = ensure_demo_key(sqlite_services)
    assert second.created and second.plaintext != first.plaintext
    assert mode_of(path) == 0o600
    with sqlite_services.db.session() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == first.prefix))
        assert key is not None and key.revoked_at is not None


def test_a_garbled_file_is_replaced(sqlite_services: Services) -> None:
    path = demo_key_path(sqlite_services)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not a key\n")
    os.close(fd)
    demo = ensure_demo_key(sqlite_services)
    assert demo.created
    assert path.read_text().strip() == demo.plaintext


def test_make_runs_entry_point_prints_the_key_alone_and_reuses_it(
    sqlite_services: Services,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_HOME"] = str(sqlite_services.settings.home)
    command = [sys.executable, "-c", "from appliance.bootstrap import print_demo_key as p; p()"]
    runs = [
        subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout == demo_key_path(sqlite_services).read_text()
    assert key_count(sqlite_services) == 1
