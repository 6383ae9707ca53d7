"""What every `appliance` subcommand shares: who is acting, the settings and services
built once per invocation, and turning the appliance's errors into one line and exit 1.

Every command group in this package imports these from here, so
``appliance.cli`` only assembles the groups.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from appliance.config import Settings, load_settings
from appliance.errors import ApplianceError, SetupError
from appliance.services import Services, build_services

F = TypeVar("F", bound=Callable[..., Any])


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def settings() -> Settings:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if "settings" not in root.meta:
        root.meta["settings"] = load_settings()
    return root.meta["settings"]


def services(require_init: bool = True) -> Services:
    root = click.get_current_context().find_root()
    if "services" not in root.meta:
        settings_ = settings()
        if require_init and not settings_.master_key_path.exists():
            raise SetupError(f"{settings_.home} is not initialised; run `appliance init` first")
        root.meta["services"] = build_services(settings_)
    return root.meta["services"]


def fails_cleanly(func: F) -> F:
    """Turn the appliance's errors into a one-line message and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ApplianceError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
