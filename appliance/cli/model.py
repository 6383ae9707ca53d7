"""``appliance model``: the model registry (built-in engine models, upstream models) and
aliases with weighted (model, LoRA adapter) targets for canary releases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.cli.support import actor as _actor
from appliance.cli.support import fails_cleanly as _fails_cleanly
from appliance.cli.support import services as _services
from appliance.errors import InvalidRequest, SetupError
from appliance.upstream.vllm_options import FIELDS as VLLM_FIELDS
from appliance.upstream.vllm_options import VLLM_VERSION

F = TypeVar("F", bound=Callable[..., Any])
NONE = "none"  # a vLLM option's value that means: no such flag


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


def _vllm_flags(func: F) -> F:
    """The vLLM options of an upstream model (checked by appliance.upstream.vllm_options)."""
    for decorator in reversed(
        (
            click.option(
                "--tool-call-parser",
                default=None,
                metavar="NAME|none",
                help="vLLM's --tool-call-parser (hermes, mistral, llama3_json, pythonic, ...)",
            ),
            click.option(
                "--enable-auto-tool-choice/--no-enable-auto-tool-choice",
                default=None,
                help="vLLM's --enable-auto-tool-choice (needs a tool call parser)",
            ),
            click.option(
                "--reasoning-parser",
                default=None,
                metavar="NAME|none",
                help="vLLM's --reasoning-parser (deepseek_r1, granite)",
            ),
            click.option(
                "--chat-template",
                default=None,
                metavar="PATH|none",
                help="vLLM's --chat-template: a Jinja file on the vLLM host",
            ),
            click.option(
                "--max-model-len",
                default=None,
                metavar="TOKENS|none",
                help="vLLM's --max-model-len (the context length)",
            ),
            click.option(
                "--guided-decoding-backend",
                default=None,
                metavar="NAME|none",
                help="vLLM's --guided-decoding-backend (auto, xgrammar, guidance; from vLLM "
                "0.9 also outlines, lm-format-enforcer)",
            ),
            click.option(
                "--vllm-version",
                default=VLLM_VERSION,
                show_default=True,
                help="the vLLM version the upstreams run (the options are checked against it)",
            ),
        )
    ):
        func = decorator(func)
    return func


def _given_vllm_options(values: dict[str, Any]) -> dict[str, Any]:
    """The vLLM options given on the command line ('none': that flag off)."""
    given: dict[str, Any] = {}
    for field in VLLM_FIELDS:
        value = values.pop(field)
        if value is None:
            continue
        given[field] = None if isinstance(value, str) and value.lower() == NONE else value
    return given


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
@_vllm_flags
@_fails_cleanly
def model_add(
    name: str,
    path: Path | None,
    upstreams: tuple[str, ...],
    served_name: str | None,
    upstream_key_file: TextIO | None,
    vllm_version: str,
    **vllm_values: Any,
) -> None:
    """Register a model: --path DIR (built-in engine) or --upstream URL [...].

    Its upstreams are sent the engine key (HOME/keys/engine.key) unless --upstream-key-file
    gives them a key of their own. An upstream model gets the vLLM options of its family
    (DeepSeek-R1 and its distills: --reasoning-parser deepseek_r1; DeepSeek-V3, from vLLM
    0.9.0: --tool-call-parser deepseek_v3 --enable-auto-tool-choice), then those given."""
    from appliance.upstream.credentials import PURPOSE
    from appliance.upstream.registry import add_model, vllm_options_of

    vllm = _given_vllm_options(vllm_values)
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
            vllm=vllm,
            vllm_version=vllm_version,
        )
        options = vllm_options_of(added)
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
            vllm=options,
        )
    click.echo(f"registered model {name} ({added.kind})")
    if options:
        click.echo(f"vLLM options: {_describe(options)}")


@model.command("set")
@click.argument("name")
@_vllm_flags
@click.option(
    "--defaults",
    is_flag=True,
    help="options not given go back to the model family's defaults (else they are kept)",
)
@_fails_cleanly
def model_set(name: str, vllm_version: str, defaults: bool, **vllm_values: Any) -> None:
    """Change how vLLM serves a model: the options given ('none': that flag off).

    Prints what changed, or 'unchanged'. vLLM reads them when its unit or container
    (re)starts."""
    from appliance.upstream.registry import get_model, set_vllm_options

    vllm = _given_vllm_options(vllm_values)
    if not vllm and not defaults:
        raise click.UsageError("give a vLLM option to change (see --help), or --defaults")
    services = _services()
    with services.db.session() as session:
        found = get_model(session, name)
        changed = set_vllm_options(found, vllm, defaults=defaults, vllm_version=vllm_version)
        if changed:
            record(
                session,
                AuditAction.MODEL_SET,
                actor=_actor(),
                target=name,
                context=CLI_CONTEXT,
                changes={field: {"from": old, "to": new} for field, (old, new) in changed.items()},
            )
    if not changed:
        click.echo(f"model {name}: unchanged")
        return
    parts = [f"{field} {old!r} -> {new!r}" for field, (old, new) in changed.items()]
    click.echo(f"model {name}: {', '.join(parts)}")


@model.command("vllm-args")
@click.argument("name")
@click.option(
    "--vllm-version",
    default=VLLM_VERSION,
    show_default=True,
    help="the version of the vLLM that will serve it",
)
@_fails_cleanly
def model_vllm_args(name: str, vllm_version: str) -> None:
    """Print the `vllm serve` arguments of a model's vLLM options, one per line (what
    compose/vllm-entrypoint.sh adds). A model not registered yet gets its family's."""
    from sqlalchemy import select

    from appliance.models import Model
    from appliance.upstream import vllm_options
    from appliance.upstream.registry import vllm_serve_args

    with _services().db.session() as session:
        found = session.scalar(select(Model).where(Model.name == name))
        if found is None:
            click.echo(f"{name} is not registered: its family's vLLM options only", err=True)
            try:
                args = vllm_options.serve_args(
                    vllm_options.resolve([name], {}, vllm_version), vllm_version
                )
            except vllm_options.VllmOptionError as exc:
                raise InvalidRequest(exc.message, param=exc.field) from None
        else:
            args = vllm_serve_args(found, vllm_version)
    for arg in args:
        click.echo(arg)


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{field}={value}" for field, value in options.items())


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
    """List registered models, their upstreams and vLLM options."""
    from appliance.upstream.registry import list_models, vllm_options_of

    with _services().db.session() as session:
        for m in list_models(session):
            where = m.path or ", ".join(u.url for u in m.upstreams)
            options = vllm_options_of(m)
            vllm = f"\t{_describe(options)}" if options else ""
            click.echo(f"{m.name}\t{m.kind}\t{where}{vllm}")


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
