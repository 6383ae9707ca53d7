"""The `appliance` command. Thin: parse arguments, call a service, print the result."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from sqlalchemy import select

from appliance.audit import cli as audit_cli
from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.clisupport import actor as _actor
from appliance.clisupport import fails_cleanly as _fails_cleanly
from appliance.clisupport import services as _services
from appliance.clisupport import settings as _settings
from appliance.config import load_settings
from appliance.finetune import cli as finetune_cli
from appliance.privacy import cli as privacy_cli
from appliance.upstream import cli as model_cli
from appliance.vault import cli as vault_cli


@click.group()
def main() -> None:
    """Secure on-premises LLM appliance. Every command honours APPLIANCE_HOME."""
    # Everything the appliance writes (database, keys, logs, broker) is private to its user.
    os.umask(0o077)


# --- init, config, db -------------------------------------------------------


@main.command()
@click.option(
    "--admin", "admin_name", default="admin", show_default=True, help="first admin account"
)
@_fails_cleanly
def init(admin_name: str) -> None:
    """Create the home directory, master key, database and first admin (idempotent)."""
    from appliance.bootstrap import init_home

    services = _services(require_init=False)
    result = init_home(services, admin_name)
    home = services.settings.home
    if result.admin_password is None:
        click.echo(f"{home} is already initialised; nothing changed.")
        return
    click.echo(f"Initialised {home}")
    click.echo(
        f"master key: {services.settings.master_key_path} (0600; back it up, never share it)"
    )
    click.echo(f"admin account: {admin_name} (this password is shown once):")
    click.echo(result.admin_password)


@main.group()
def config() -> None:
    """Inspect the settings."""


@config.command("check")
@_fails_cleanly
def config_check() -> None:
    """Validate the settings and print them with secrets hidden."""
    settings = _settings()
    for name, value in settings.public_view().items():
        click.echo(f"{name}: {value}")
    _services(require_init=False)  # also validates the policies
    click.echo("settings OK")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@_fails_cleanly
def db_upgrade() -> None:
    """Apply the Alembic migrations up to the newest revision."""
    from appliance import migrations

    before, after = migrations.upgrade(_services().db.url)
    if before == after:
        click.echo(f"database schema is up to date (revision {after}); nothing applied")
    else:
        click.echo(f"database schema upgraded from {before or 'empty'} to {after}")


# --- users and keys ---------------------------------------------------------


@main.group()
def user() -> None:
    """Accounts."""


@user.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="role from policies/rbac.yaml")
@_fails_cleanly
def user_create(name: str, roles: tuple[str, ...]) -> None:
    """Create a local account; its generated password is printed once, on the last line."""
    from appliance.auth.users import create_user

    services = _services()
    with services.db.session() as session:
        created, password = create_user(session, name, list(roles))
        record(
            session,
            AuditAction.USER_CREATE,
            actor=_actor(),
            target=name,
            context=CLI_CONTEXT,
            roles=list(roles),
        )
    if services.rbac.totp_required(list(roles)):
        click.echo("its roles require TOTP: an authenticator app is enrolled at first sign-in")
    click.echo(f"created user {created.username} with roles {', '.join(roles)}; password:")
    click.echo(password)


@user.command("reset-totp")
@click.argument("name")
@_fails_cleanly
def user_reset_totp(name: str) -> None:
    """Forget a user's authenticator (lost phone); the next sign-in enrols a new one."""
    from appliance.auth import totp
    from appliance.auth.users import get_user

    services = _services()
    with services.db.session() as session:
        totp.reset(get_user(session, name))
        record(session, AuditAction.TOTP_RESET, actor=_actor(), target=name, context=CLI_CONTEXT)
    click.echo(f"the authenticator of {name} is reset; it is enrolled again at next sign-in")


@user.command("unlock")
@click.argument("name")
@_fails_cleanly
def user_unlock(name: str) -> None:
    """Clear a local account's failed sign-ins and lockout."""
    from appliance.auth.users import get_user

    services = _services()
    with services.db.session() as session:
        account = get_user(session, name)
        account.failed_logins = 0
        account.locked_until = None
        record(session, AuditAction.USER_UNLOCK, actor=_actor(), target=name, context=CLI_CONTEXT)
    click.echo(f"{name} is unlocked")


@main.group()
def key() -> None:
    """API keys."""


@key.command("create")
@click.option("--user", "username", required=True)
@click.option("--name", required=True)
@click.option("--models", default="*", show_default=True, help="glob(s) of models, comma-separated")
@click.option("--expires-days", type=click.IntRange(min=1), default=None)
@_fails_cleanly
def key_create(username: str, name: str, models: str, expires_days: int | None) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    from appliance.auth.api_keys import create_api_key
    from appliance.auth.users import get_user

    services = _services()
    with services.db.session() as session:
        new = create_api_key(
            session, get_user(session, username), name, models=models, expires_days=expires_days
        )
        record(
            session,
            AuditAction.KEY_CREATE,
            actor=_actor(),
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
@_fails_cleanly
def key_revoke(key_id: str) -> None:
    """Revoke a key by its id (the sk-app-XXXXXXXX prefix)."""
    from appliance.auth.api_keys import revoke_api_key

    services = _services()
    with services.db.session() as session:
        revoked = revoke_api_key(session, key_id[:15])
        record(
            session,
            AuditAction.KEY_REVOKE,
            actor=_actor(),
            target=revoked.prefix,
            context=CLI_CONTEXT,
        )
    click.echo(f"revoked {revoked.prefix}")


@key.command("list")
@_fails_cleanly
def key_list() -> None:
    """List keys (ids only; secrets are never stored)."""
    from appliance.models import ApiKey

    with _services().db.session() as session:
        for k in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            state = "revoked" if k.revoked_at else "active"
            click.echo(f"{k.prefix}\t{k.user.username}\t{k.name}\t{k.models}\t{state}")


# --- the engine -------------------------------------------------------------


@main.group()
def engine() -> None:
    """The built-in CPU engine (an OpenAI-compatible server on transformers)."""


@engine.command("serve")
@click.option(
    "--model",
    "model_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="a model directory",
)
@click.option(
    "--vault",
    "vault_name",
    default=None,
    help="a sealed model: unsealed to tmpfs for the life of the server, then wiped",
)
@click.option("--port", required=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--served-model-name", default=None)
@click.option(
    "--lora-modules", multiple=True, metavar="NAME=PATH", help="a LoRA adapter to serve (repeat)"
)
@click.option("--max-loras", type=click.IntRange(1), default=1, show_default=True)
@click.option("--max-lora-rank", type=click.IntRange(1), default=16, show_default=True)
@click.option(
    "--allow-runtime-lora-updating",
    is_flag=True,
    help="serve /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's "
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING)",
)
@_fails_cleanly
def engine_serve(
    model_dir: Path | None,
    vault_name: str | None,
    port: int,
    host: str,
    served_model_name: str | None,
    lora_modules: tuple[str, ...],
    max_loras: int,
    max_lora_rank: int,
    allow_runtime_lora_updating: bool,
) -> None:
    """Serve a model directory (--model DIR) or a sealed model (--vault NAME) on host:port."""
    from appliance.engine.adapters import LoraOptions, parse_lora_module
    from appliance.engine.server import serve as serve_engine

    lora = LoraOptions(
        tuple(parse_lora_module(m) for m in lora_modules),
        max_loras,
        max_lora_rank,
        allow_runtime_lora_updating,
    )
    if model_dir is not None and vault_name is None:
        serve_engine(model_dir, host, port, served_model_name, lora)
    elif vault_name is not None and model_dir is None:
        with vault_cli.serving_from_vault(_settings(), vault_name) as directory:
            serve_engine(directory, host, port, served_model_name or vault_name, lora)
    else:
        raise click.UsageError("give exactly one of --model DIR and --vault NAME")


# --- serve -------------------------------------------------------------------


@main.command()
@click.option("--api-port", type=click.IntRange(1, 65535), default=None)
@click.option("--portal-port", type=click.IntRange(1, 65535), default=None)
@_fails_cleanly
def serve(api_port: int | None, portal_port: int | None) -> None:
    """Run the embedded default: engines, API, portal, Celery worker and beat."""
    from appliance.serve import run_embedded

    overrides = {k: v for k, v in {"api_port": api_port, "portal_port": portal_port}.items() if v}
    root = click.get_current_context().find_root()
    root.meta["settings"] = load_settings(**overrides)
    sys.exit(run_embedded(_services(), overrides, echo=click.echo))


main.add_command(privacy_cli.privacy)
main.add_command(vault_cli.vault)
main.add_command(finetune_cli.finetune)
main.add_command(audit_cli.audit)
main.add_command(model_cli.model)
