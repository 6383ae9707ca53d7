"""The `appliance` command. Thin: parse arguments, call a service, print the result.

One module per command group; `support` holds what they share (who is acting, the
settings and services built once per invocation, clean failures).
"""

from __future__ import annotations

import os

import click

from appliance.cli import (
    audit,
    content,
    engine,
    finetune,
    home,
    keys,
    model,
    privacy,
    serve,
    users,
    vault,
)


@click.group()
def main() -> None:
    """Secure on-premises LLM appliance. Every command honours APPLIANCE_HOME."""
    # Everything the appliance writes (database, keys, logs, broker) is private to its user.
    os.umask(0o077)


for command in (
    home.init,
    home.config,
    home.db,
    users.user,
    keys.key,
    engine.engine,
    serve.serve,
    privacy.privacy,
    content.content,
    vault.vault,
    finetune.finetune,
    audit.audit,
    model.model,
):
    main.add_command(command)
