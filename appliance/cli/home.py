"""`appliance init`, `config check` and `db upgrade`: the home, its settings, its schema."""

from __future__ import annotations

import click

from appliance.cli import support


@click.command()
@click.option(
    "--admin", "admin_name", default="admin", show_default=True, help="first admin account"
)
@support.fails_cleanly
def init(admin_name: str) -> None:
    """Create the home, master and engine keys, database and first admin (idempotent)."""
    from appliance.bootstrap import init_home

    services = support.services(require_init=False)
    result = init_home(services, admin_name)
    home = services.settings.home
    engine_key = services.settings.engine_key_path
    if result.admin_password is None:
        if result.created_engine_key:
            click.echo(f"{home} is already initialised; created its engine key {engine_key}.")
        else:
            click.echo(f"{home} is already initialised; nothing changed.")
        return
    click.echo(f"Initialised {home}")
    click.echo(
        f"master key: {services.settings.master_key_path} (0600; back it up, never share it)"
    )
    if services.settings.engine_key is None:
        click.echo(f"engine key: {engine_key} (0600; what the gateway sends the engines)")
    click.echo(f"admin account: {admin_name} (this password is shown once):")
    click.echo(result.admin_password)


@click.group()
def config() -> None:
    """Inspect the settings."""


@config.command("check")
@support.fails_cleanly
def config_check() -> None:
    """Validate the settings and print them with secrets hidden."""
    settings = support.settings()
    for name, value in settings.public_view().items():
        click.echo(f"{name}: {value}")
    support.services(require_init=False)  # also validates the policies
    click.echo("settings OK")


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@support.fails_cleanly
def db_upgrade() -> None:
    """Apply the Alembic migrations up to the newest revision."""
    from appliance import migrations

    before, after = migrations.upgrade(support.services().db.url)
    if before == after:
        click.echo(f"database schema is up to date (revision {after}); nothing applied")
    else:
        click.echo(f"database schema upgraded from {before or 'empty'} to {after}")
