"""`appliance serve`: the embedded default."""

from __future__ import annotations

import sys

import click

from appliance.cli import support
from appliance.config import load_settings


@click.command()
@click.option("--api-port", type=click.IntRange(1, 65535), default=None)
@click.option("--portal-port", type=click.IntRange(1, 65535), default=None)
@support.fails_cleanly
def serve(api_port: int | None, portal_port: int | None) -> None:
    """Run the embedded default: engines, API, portal, Celery worker and beat."""
    from appliance.serve import run_embedded

    overrides = {k: v for k, v in {"api_port": api_port, "portal_port": portal_port}.items() if v}
    root = click.get_current_context().find_root()
    root.meta["settings"] = load_settings(**overrides)
    sys.exit(run_embedded(support.services(), overrides, echo=click.echo))
