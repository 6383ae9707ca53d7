"""Benchmark: from a passed gate to the new adapter answering, hot-loaded versus restarted.

Both paths start from the adapter sealed in the vault and end at the first completion the
engine generates with it, on the same tiny model, in the same run:

- hot-load: unseal to tmpfs, ``POST /v1/load_lora_adapter`` into the running engine
  (what the rollout does), first completion;
- restart: stop the engine, unseal, start it again with ``--lora-modules`` (what a server
  without runtime LoRA updating needs), wait for /health, first completion.

    .venv/bin/python -m pytest -m perf tests/perf/test_rollout_bench.py -s
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from appliance.bootstrap import init_home
from appliance.finetune import rollout
from appliance.models import Model, Upstream
from appliance.services import Services, build_services
from appliance.vault.unseal import unseal, wipe
from tests.conftest import free_port, make_settings, unique
from tests.perf.conftest import spawn, stop, wait_until_up

pytestmark = pytest.mark.perf
ROUNDS = 5
NAME = "bench-model"


def make_adapter(base_dir: Path, target: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(
            base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"])
        )
        model.save_pretrained(str(target))
    return target


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    shm = Path("/dev/shm") / unique("appliance-bench")
    settings = make_settings(tmp_path_factory.mktemp("bench") / "home", vault_tmpfs_dir=str(shm))
    built = build_services(settings)
    init_home(built)
    yield built
    built.db.dispose()
    shutil.rmtree(shm, ignore_errors=True)


def start_engine(model_dir: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "appliance", "engine", "serve", "--model", str(model_dir),
            "--port", str(port), "--served-model-name", NAME, *extra]  # fmt: skip
    process = spawn(argv, log)
    wait_until_up(f"http://127.0.0.1:{port}/health", process)
    return process


def first_completion(port: int, model: str) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/completions",
        json={"model": model, "prompt": "Hello", "max_tokens": 4, "temperature": 0},
        timeout=60,
    )
    response.raise_for_status()


def test_hot_load_versus_restart(services: Services, tiny_model: Path, tmp_path: Path) -> None:
    sealed = "ft-bench-v1"
    rollout.vault_of(services).import_dir(make_adapter(tiny_model, tmp_path / "a"), sealed)
    port = free_port()
    runtime = ("--allow-runtime-lora-updating", "--max-loras", "2")
    engine = start_engine(tiny_model, port, tmp_path / "engine.log", *runtime)
    model = Model(name=NAME, kind="builtin", served_name=NAME)
    model.upstreams = [Upstream(url=f"http://127.0.0.1:{port}")]
    hot: list[float] = []
    try:
        first_completion(port, NAME)  # warm
        for _ in range(ROUNDS):
            started = time.perf_counter()
            rollout.load_everywhere(services, model, sealed)
            first_completion(port, sealed)
            hot.append(time.perf_counter() - started)
            rollout.unload_everywhere(services, model, sealed)
    finally:
        stop(engine)

    cold: list[float] = []
    for i in range(ROUNDS):
        engine = start_engine(tiny_model, port, tmp_path / f"before-{i}.log")
        served = rollout.served_dir(services, sealed)
        started = time.perf_counter()
        stop(engine)
        unseal(rollout.vault_of(services), sealed, served)
        engine = start_engine(
            tiny_model, port, tmp_path / f"after-{i}.log", "--lora-modules", f"{sealed}={served}"
        )
        first_completion(port, sealed)
        cold.append(time.perf_counter() - started)
        stop(engine)
        wipe(served)

    hot_s, cold_s = statistics.median(hot), statistics.median(cold)
    rows = {
        "rounds": str(ROUNDS),
        "hot-load, gate to first answer (median)": f"{hot_s * 1000:.0f} ms",
        "restart, gate to first answer (median)": f"{cold_s * 1000:.0f} ms",
        "restart / hot-load": f"{cold_s / hot_s:.1f}x",
    }
    width = max(map(len, rows))
    print(f"\n{'rollout of a LoRA adapter (tiny model, CPU)':<{width}} | value")
    print(f"{'-' * width}-|------")
    for key, value in rows.items():
        print(f"{key:<{width}} | {value}")
    assert hot_s < cold_s
