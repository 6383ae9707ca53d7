"""``appliance model``: the model registry (built-in engine models, upstream models) and
aliases with weighted (model, LoRA adapter) targets for canary releases."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import click

from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.cli.support import actor as _actor
from appliance.cli.support import fails_cleanly as _fails_cleanly
from appliance.cli.support import services as _services
from appliance.errors import InvalidRequest, SetupError


@click.group("model")
def model() -> None:
    """The model registry."""


@model.command("make-tiny")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True)
@_fails_cleanly
def model_make_tiny(directory: Path, seed: int) -> None:
    """Create a tiny random-weight Llama model with a locally trained tokenizer."""
    from appliance.engine.tiny import make_tiny

    try:
        path = make_tiny(directory, seed=seed)
    except FileExistsError:
        raise SetupError(f"{directory} already exists and is not empty") from None
    click.echo(f"tiny model written to {path}")


@model.command("add")
@click.argument("name")
@click.option(
    "--path", type=click.Path(path_type=Path), default=None, help="served by the built-in engine"
)
@click.option(
    "--upstream", "upstreams", multiple=True, help="OpenAI-compatible server URL (repeatable)"
)
@click.option("--served-name", default=None, help="the name the upstream knows the model by")
@click.option(
    "--upstream-key-file",
    type=click.File("r", encoding="ascii"),
    default=None,
    help="a file ('-': stdin) holding the key these upstreams require (their own vLLM "
    "--api-key), sent instead of the engine key; kept sealed",
)
@_fails_cleanly
def model_add(
    name: str,
    path: Path | None,
    upstreams: tuple[str, ...],
    served_name: str | None,
    upstream_key_file: TextIO | None,
) -> None:
    """Register a model: --path DIR (built-in engine) or --upstream URL [...].

    Its upstreams are sent the engine key (HOME/keys/engine.key) unless --upstream-key-file
    gives them a key of their own."""
    from appliance.upstream.credentials import PURPOSE
    from appliance.upstream.registry import add_model

    services = _services()
    key = _read_key(upstream_key_file)
    with services.db.session() as session:
        added = add_model(
            session,
            name,
            path=path,
            upstream_urls=list(upstreams),
            served_name=served_name,
            upstream_key=key,
            sealing_key=services.derived_key(PURPOSE) if key is not None else None,
        )
        record(
            session,
            AuditAction.MODEL_ADD,
            actor=_actor(),
            target=name,
            context=CLI_CONTEXT,
            kind=added.kind,
            upstreams=list(upstreams),
            path=str(path) if path else None,
            upstream_key="own" if key is not None else "engine",
        )
    click.echo(f"registered model {name} ({added.kind})")


@model.command("upstream-key")
@click.argument("name")
@click.option(
    "--key-file",
    type=click.File("r", encoding="ascii"),
    default=None,
    help="a file ('-': stdin) holding the key the model's upstreams require",
)
@click.option("--engine-key", is_flag=True, help="send them the engine key again")
@_fails_cleanly
def model_upstream_key(name: str, key_file: TextIO | None, engine_key: bool) -> None:
    """Change the credential a model's upstreams are sent: --key-file FILE or --engine-key."""
    from appliance.upstream.credentials import PURPOSE
    from appliance.upstream.registry import get_model, set_upstream_key

    if (key_file is None) == (not engine_key):
        raise click.UsageError("give exactly one of --key-file FILE and --engine-key")
    key = _read_key(key_file)
    services = _services()
    with services.db.session() as session:
        found = get_model(session, name)
        set_upstream_key(found, key, services.derived_key(PURPOSE))
        record(
            session,
            AuditAction.MODEL_UPSTREAM_KEY,
            actor=_actor(),
            target=name,
            context=CLI_CONTEXT,
            upstreams=[u.url for u in found.upstreams],
            upstream_key="own" if key is not None else "engine",
        )
    which = "their own key" if key is not None else "the engine key"
    click.echo(f"the upstreams of {name} are sent {which} (within a second by every API worker)")


def _read_key(source: TextIO | None) -> str | None:
    if source is None:
        return None
    key = source.read().strip()
    if not key:
        raise InvalidRequest("the key file is empty")
    return key


@model.command("list")
@_fails_cleanly
def model_list() -> None:
    """List registered models and their upstreams."""
    from appliance.upstream.registry import list_models

    with _services().db.session() as session:
        for m in list_models(session):
            where = m.path or ", ".join(u.url for u in m.upstreams)
            click.echo(f"{m.name}\t{m.kind}\t{where}")


@model.command("alias")
@click.argument("name")
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="MODEL[+ADAPTER]=WEIGHT[@VERSION], repeatable (weights are relative)",
)
@_fails_cleanly
def model_alias(name: str, targets: tuple[str, ...]) -> None:
    """Create an alias routed to weighted (model, LoRA adapter) targets."""
    from appliance.upstream.aliases import add_alias, parse_target

    services = _services()
    with services.db.session() as session:
        add_alias(session, name, [parse_target(t) for t in targets])
        record(
            session,
            AuditAction.MODEL_ALIAS_SET,
            actor=_actor(),
            target=name,
            context=CLI_CONTEXT,
            targets=list(targets),
        )
    click.echo(f"alias {name} -> {', '.join(targets)}")


@model.command("alias-weights")
@click.argument("name")
@click.argument("weights", nargs=-1, required=True)
@_fails_cleanly
def model_alias_weights(name: str, weights: tuple[str, ...]) -> None:
    """Change an alias's canary weights: KEY=WEIGHT where KEY is a version or MODEL[+ADAPTER]."""
    from appliance.upstream.aliases import set_alias_weights

    parsed: dict[str, int] = {}
    for item in weights:
        key, sep, value = item.rpartition("=")
        if not sep or not key or not value.isdigit():
            raise InvalidRequest(f"{item!r} is not KEY=WEIGHT")
        parsed[key] = int(value)
    services = _services()
    with services.db.session() as session:
        set_alias_weights(session, name, parsed)
        record(
            session,
            AuditAction.MODEL_ALIAS_SET,
            actor=_actor(),
            target=name,
            context=CLI_CONTEXT,
            weights=parsed,
        )
    click.echo(f"alias {name} weights: {', '.join(weights)}")


@model.command("alias-list")
@_fails_cleanly
def model_alias_list() -> None:
    """List aliases and their targets with weights."""
    from appliance.upstream.aliases import list_aliases, target_key

    with _services().db.session() as session:
        for alias in list_aliases(session):
            parts = [
                f"{target_key(t)}={t.weight}" + (f"@{t.version}" if t.version else "")
                for t in alias.targets
            ]
            click.echo(f"{alias.name}\t{' '.join(parts)}")


@model.command("alias-rm")
@click.argument("name")
@_fails_cleanly
def model_alias_rm(name: str) -> None:
    """Delete an alias (its models stay registered)."""
    from appliance.upstream.aliases import delete_alias

    services = _services()
    with services.db.session() as session:
        delete_alias(session, name)
        record(
            session,
            AuditAction.MODEL_ALIAS_DELETE,
            actor=_actor(),
            target=name,
            context=CLI_CONTEXT,
        )
    click.echo(f"deleted alias {name}")
