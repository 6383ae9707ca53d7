"""`appliance key`: API keys."""

from __future__ import annotations

import click
from sqlalchemy import select

from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.cli import support


@click.group()
def key() -> None:
    """API keys."""


@key.command("create")
@click.option("--user", "username", required=True)
@click.option("--name", required=True)
@click.option("--models", default="*", show_default=True, help="glob(s) of models, comma-separated")
@click.option("--expires-days", type=click.IntRange(min=1), default=None)
@support.fails_cleanly
def key_create(username: str, name: str, models: str, expires_days: int | None) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    from appliance.auth.api_keys import create_api_key
    from appliance.auth.users import get_user

    services = support.services()
    with services.db.session() as session:
        new = create_api_key(
            session, get_user(session, username), name, models=models, expires_days=expires_days
        )
        record(
            session,
            AuditAction.KEY_CREATE,
            actor=support.actor(),
            target=new.key.prefix,
            context=CLI_CONTEXT,
            owner=username,
            models=models,
            expires_days=expires_days,
        )
    expiry = new.key.expires_at.isoformat() if new.key.expires_at else "never"
    click.echo(
        f"created key {new.key.prefix} '{name}' for {username} (models {models}, expires {expiry}):"
    )
    click.echo(new.plaintext)


@key.command("revoke")
@click.argument("key_id")
@support.fails_cleanly
def key_revoke(key_id: str) -> None:
    """Revoke a key by its id (the sk-app-XXXXXXXX prefix)."""
    from appliance.auth.api_keys import revoke_api_key

    services = support.services()
    with services.db.session() as session:
        revoked = revoke_api_key(session, key_id[:15])
        record(
            session,
            AuditAction.KEY_REVOKE,
            actor=support.actor(),
            target=revoked.prefix,
            context=CLI_CONTEXT,
        )
    click.echo(f"revoked {revoked.prefix}")


@key.command("list")
@support.fails_cleanly
def key_list() -> None:
    """List keys (ids only; secrets are never stored)."""
    from appliance.models import ApiKey

    with support.services().db.session() as session:
        for k in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            state = "revoked" if k.revoked_at else "active"
            click.echo(f"{k.prefix}\t{k.user.username}\t{k.name}\t{k.models}\t{state}")
