"""`appliance init`: create a home directory, its keys, its database and the first admin."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from appliance import migrations
from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.auth.users import create_user, sync_roles
from appliance.models import User
from appliance.services import Services
from appliance.vault.master_key import create_master_key, load_master_key


@dataclass(frozen=True)
class InitResult:
    created_key: bool
    admin_password: str | None  # set only when the admin was created by this run


def ensure_directories(services: Services) -> None:
    settings = services.settings
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    for directory in (settings.keys_dir, settings.models_dir, settings.log_dir, settings.run_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def init_home(services: Services, admin_name: str = "admin") -> InitResult:
    """Idempotent: an existing key, schema or admin is kept as it is."""
    ensure_directories(services)
    created_key = create_master_key(services.settings.master_key_path)
    load_master_key(services.settings.master_key_path)  # refuses a key file others can read
    migrations.upgrade(services.db.url)
    with services.db.session() as session:
        sync_roles(session, services.rbac)
        if session.scalar(select(User.id).limit(1)) is not None:
            return InitResult(created_key=created_key, admin_password=None)
        user, password = create_user(session, admin_name, ["admin"])
        record(
            session,
            AuditAction.APPLIANCE_INIT,
            actor="cli",
            target=user.username,
            context=CLI_CONTEXT,
        )
    return InitResult(created_key=created_key, admin_password=password)
