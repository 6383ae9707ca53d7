"""`appliance engine serve`: the built-in CPU engine."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli import support
from appliance.cli import vault as vault_cli


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
@support.fails_cleanly
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
        with vault_cli.serving_from_vault(support.settings(), vault_name) as directory:
            serve_engine(directory, host, port, served_model_name or vault_name, lora)
    else:
        raise click.UsageError("give exactly one of --model DIR and --vault NAME")
