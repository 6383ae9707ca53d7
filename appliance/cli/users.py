"""`appliance user`: local accounts."""

from __future__ import annotations

import click

from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.cli import support


@click.group()
def user() -> None:
    """Accounts."""


@user.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="role from policies/rbac.yaml")
@support.fails_cleanly
def user_create(name: str, roles: tuple[str, ...]) -> None:
    """Create a local account; its generated password is printed once, on the last line."""
    from appliance.auth.users import create_user

    services = support.services()
    with services.db.session() as session:
        created, password = create_user(session, name, list(roles))
        record(
            session,
            AuditAction.USER_CREATE,
            actor=support.actor(),
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
@support.fails_cleanly
def user_reset_totp(name: str) -> None:
    """Forget a user's authenticator (lost phone); the next sign-in enrols a new one."""
    from appliance.auth import totp
    from appliance.auth.users import get_user

    services = support.services()
    with services.db.session() as session:
        totp.reset(get_user(session, name))
        record(
            session, AuditAction.TOTP_RESET, actor=support.actor(), target=name, context=CLI_CONTEXT
        )
    click.echo(f"the authenticator of {name} is reset; it is enrolled again at next sign-in")


@user.command("unlock")
@click.argument("name")
@support.fails_cleanly
def user_unlock(name: str) -> None:
    """Clear a local account's failed sign-ins and lockout."""
    from appliance.auth import throttle
    from appliance.auth.users import get_user

    services = support.services()
    with services.db.session() as session:
        account = get_user(session, name)
        throttle.unlock(session, account)
        record(
            session,
            AuditAction.USER_UNLOCK,
            actor=support.actor(),
            target=name,
            context=CLI_CONTEXT,
        )
    click.echo(f"{name} is unlocked")
