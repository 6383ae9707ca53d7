"""`appliance engine serve` (the built-in CPU engine) and `appliance engine rotate-key`
(the credential the gateway and the fine-tune rollout send the engines)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from appliance.audit.events import AuditAction
from appliance.cli import support
from appliance.cli import vault as vault_cli
from appliance.errors import SetupError
from appliance.vault.engine_key import DEFAULT_GRACE_S, EngineKeys, rotate_engine_key


@click.group()
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
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="the loopback unless the gateway is on another machine",
)
@click.option(
    "--api-key-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the engine key's file (0600), read again when it changes; default: the setting "
    "engine_key, else HOME/keys/engine.key (made if missing)",
)
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
@support.fails_cleanly
def engine_serve(
    model_dir: Path | None,
    vault_name: str | None,
    port: int,
    host: str,
    api_key_file: Path | None,
    served_model_name: str | None,
    lora_modules: tuple[str, ...],
    max_loras: int,
    max_lora_rank: int,
    allow_runtime_lora_updating: bool,
) -> None:
    """Serve a model directory (--model DIR) or a sealed model (--vault NAME) on host:port.

    Every route but /health requires 'Authorization: Bearer <engine key>'."""
    from appliance.engine.adapters import LoraOptions, parse_lora_module
    from appliance.engine.server import serve as serve_engine

    lora = LoraOptions(
        tuple(parse_lora_module(m) for m in lora_modules),
        max_loras,
        max_lora_rank,
        allow_runtime_lora_updating,
    )
    if (model_dir is None) == (vault_name is None):
        raise click.UsageError("give exactly one of --model DIR and --vault NAME")
    keys = (
        EngineKeys(api_key_file, create=False)
        if api_key_file is not None
        else EngineKeys.from_settings(support.settings())
    )
    if model_dir is not None:
        serve_engine(model_dir, host, port, served_model_name, lora, keys=keys)
    else:
        assert vault_name is not None
        with vault_cli.serving_from_vault(support.settings(), vault_name) as directory:
            serve_engine(directory, host, port, served_model_name or vault_name, lora, keys=keys)


@engine.command("rotate-key")
@click.option(
    "--grace-s",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_S,
    show_default=True,
    help="seconds the replaced key is still accepted (0: refused at once)",
)
@click.option(
    "--key-stdin",
    is_flag=True,
    help="the new key is read from stdin (a deployment's own value); default: a random one",
)
@support.fails_cleanly
def engine_rotate_key(grace_s: float, key_stdin: bool) -> None:
    """Replace the engine key in HOME/keys/engine.key (0600). The built-in engines and the
    gateway of this home pick it up within a second, without a restart."""
    settings = support.settings()
    if settings.engine_key is not None:
        raise SetupError(
            "the engine key is the setting engine_key here (APPLIANCE_ENGINE_KEY or "
            "appliance.yaml): change it there, then restart the engines and the gateway"
        )
    key = sys.stdin.read().strip() if key_stdin else None
    rotation = rotate_engine_key(settings.engine_key_path, grace_s=grace_s, key=key)
    if not rotation.changed:
        click.echo(f"{rotation.path} already holds this key; nothing changed")
        return
    until = (
        datetime.fromtimestamp(rotation.previous_expires_at, UTC).isoformat(timespec="seconds")
        if rotation.previous_expires_at is not None
        else None
    )
    vault_cli.audit(
        settings,
        AuditAction.ENGINE_KEY_ROTATE,
        str(rotation.path),
        source="stdin" if key_stdin else "random",
        grace_s=grace_s,
        previous_accepted_until=until,
    )
    click.echo(f"engine key rotated: {rotation.path} (0600)")
    click.echo(
        f"the replaced key is accepted until {until}"
        if until
        else "the replaced key is refused from now on"
    )
    click.echo(
        "no restart needed here: the built-in engines, the API and the workers of this home "
        "read the new key within a second."
    )
    click.echo(
        "restart needed elsewhere: vLLM servers that use the engine key (VLLM_API_KEY / "
        "--api-key) must be restarted with the new one, and other hosts of a fleet need the "
        "same file (ansible: appliance_engine_key and vllm_api_key, then re-run the "
        "playbook); until then the gateway falls back to the replaced key while it is accepted."
    )
