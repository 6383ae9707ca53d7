"""`appliance init`: create a home directory, its keys, its database and the first admin.

Also the demo API key `make run` prints (``ensure_demo_key``): kept in
``$APPLIANCE_HOME/demo-api-key`` (0600) and reused by every run while it is valid, so
runs do not pile up keys.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from appliance import migrations
from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.auth.api_keys import authenticate_api_key, create_api_key, revoke_api_key
from appliance.auth.users import create_user, get_user, sync_roles
from appliance.config import load_settings
from appliance.errors import ApplianceError, AuthenticationFailed
from appliance.models import User, utcnow
from appliance.services import Services, build_services
from appliance.vault.engine_key import ensure_engine_key, read_engine_key
from appliance.vault.master_key import create_master_key, load_master_key

DEMO_KEY_FILE = "demo-api-key"
DEMO_KEY_NAME = "make-run demo"


@dataclass(frozen=True)
class InitResult:
    created_key: bool
    admin_password: str | None  # set only when the admin was created by this run
    created_engine_key: bool = False  # also on a home initialised before engine keys existed


def ensure_directories(services: Services) -> None:
    settings = services.settings
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    for directory in (settings.keys_dir, settings.models_dir, settings.log_dir, settings.run_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def init_home(services: Services, admin_name: str = "admin") -> InitResult:
    """Idempotent: an existing key, schema or admin is kept as it is."""
    ensure_directories(services)
    settings = services.settings
    created_key = create_master_key(settings.master_key_path)
    load_master_key(settings.master_key_path)  # refuses a key file others can read
    created_engine_key = False
    if settings.engine_key is None:  # else the setting is the engine key; no file is used
        created_engine_key = ensure_engine_key(settings.engine_key_path)
        read_engine_key(settings.engine_key_path)  # refuses one others can read
    migrations.upgrade(services.db.url)
    with services.db.session() as session:
        sync_roles(session, services.rbac)
        if session.scalar(select(User.id).limit(1)) is not None:
            return InitResult(created_key, None, created_engine_key)
        user, password = create_user(session, admin_name, ["admin"])
        record(
            session,
            AuditAction.APPLIANCE_INIT,
            actor="cli",
            target=user.username,
            context=CLI_CONTEXT,
        )
    return InitResult(created_key, password, created_engine_key)


# ------------------------------------------------------------------ the demo key


@dataclass(frozen=True)
class DemoKey:
    plaintext: str
    prefix: str
    expires_at: datetime | None
    created: bool  # False: the key of an earlier run, still valid, was reused


def demo_key_path(services: Services) -> Path:
    return services.settings.home / DEMO_KEY_FILE


def ensure_demo_key(
    services: Services,
    username: str = "admin",
    *,
    expires_days: int = 1,
    min_valid: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> DemoKey:
    """The demo key in ``$APPLIANCE_HOME/demo-api-key``, reused while it is valid; else a new one.

    Valid: it authenticates (not revoked, not expired, its user exists and is active), it
    belongs to ``username``, it stays valid for ``min_valid`` more, and its file is readable
    by its owner only. A file others could read is not trusted: its key is revoked (audited)
    and replaced. A new key expires after ``expires_days`` and is audited like `appliance key
    create`; the file is replaced atomically, mode 0600.
    """
    now = now or utcnow()
    path = demo_key_path(services)
    stored, private = _read_private(path)
    with services.db.session() as session:
        if stored:
            try:
                key = authenticate_api_key(session, stored, now=now + min_valid)
            except AuthenticationFailed:
                key = None
            if key is not None and key.user.username == username:
                if private:
                    return DemoKey(stored, key.prefix, key.expires_at, created=False)
                revoke_api_key(session, key.prefix)
                record(
                    session,
                    AuditAction.KEY_REVOKE,
                    actor="cli",
                    target=key.prefix,
                    context=CLI_CONTEXT,
                    reason=f"{DEMO_KEY_FILE} was readable by others",
                )
        new = create_api_key(
            session, get_user(session, username), DEMO_KEY_NAME, expires_days=expires_days
        )
        record(
            session,
            AuditAction.KEY_CREATE,
            actor="cli",
            target=new.key.prefix,
            context=CLI_CONTEXT,
            owner=username,
            models=new.key.models,
            expires_days=expires_days,
        )
        demo = DemoKey(new.plaintext, new.key.prefix, new.key.expires_at, created=True)
        _write_private(path, new.plaintext)  # before the commit: a key is never lost unsaved
    return demo


def _read_private(path: Path) -> tuple[str, bool]:
    """The file's text (stripped) and whether only its owner may read or write it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "", False
    return text, stat.S_ISREG(mode) and not mode & 0o077


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def print_demo_key(username: str = "admin") -> None:
    """`make run`'s entry point: print the demo API key, alone, on stdout."""
    try:
        services = build_services(load_settings())
        try:
            demo = ensure_demo_key(services, username)
        finally:
            services.db.dispose()
    except ApplianceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    print(demo.plaintext)
