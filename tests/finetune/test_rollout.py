"""Serving sealed adapters: canary weights, automatic promotion and rollback from the audit
trail, manual rollback to the previous version, and reloading after an upstream restart —
against the real built-in engine and vault, with adapters made by peft (no training)."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

from appliance.audit.events import AuditAction, record
from appliance.bootstrap import init_home
from appliance.config import SHIPPED_POLICIES
from appliance.engine.adapters import LoraOptions
from appliance.engine.server import create_app as create_engine
from appliance.errors import Conflict
from appliance.finetune import rollout
from appliance.finetune.runs import get_run
from appliance.models import FinetuneRun, Upstream
from appliance.services import Services, build_services
from appliance.upstream.aliases import add_alias, get_alias
from appliance.upstream.registry import add_model
from tests import timing
from tests.conftest import LiveServer, make_settings, scratch_pg_database, unique

ALIAS = "ro-bot"
MODEL = "tiny-ro"
POLICY = f"""
aliases:
  {ALIAS}:
    rollout: {{canary_weight: 20, auto_promote: true, promote_after_requests: 5,
               max_error_rate: 0.2}}
"""


@dataclass
class Setup:
    services: Services
    engine: LiveServer
    adapters: dict[int, Path]
    shm: Path


def make_adapter(base_dir: Path, target: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
        generator = torch.Generator().manual_seed(seed)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data = torch.randn(param.shape, generator=generator) * 0.5
        model.save_pretrained(str(target))
    return target


@pytest.fixture(scope="module")
def setup(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("rollout")
    policies = tmp / "policies"
    policies.mkdir()
    for path in SHIPPED_POLICIES.iterdir():
        shutil.copy(path, policies / path.name)
    (policies / "finetune.yaml").write_text(POLICY)
    shm = Path("/dev/shm") / unique("appliance-rollout")
    with scratch_pg_database("appliance_rollout") as url:
        settings = make_settings(
            tmp / "home", database_url=url, policies_dir=str(policies), vault_tmpfs_dir=str(shm)
        )
        services = build_services(settings)
        init_home(services)
        lora = LoraOptions(runtime_updates=True, max_loras=3, max_lora_rank=8)
        engine = LiveServer(create_engine(tiny_model, MODEL, lora))
        with services.db.session() as session:
            model = add_model(session, MODEL, path=tiny_model)
            model.upstreams = [Upstream(url=engine.url)]
            add_alias(session, ALIAS, [(MODEL, None, 100, "base")])
            session.commit()
        adapters = {n: make_adapter(tiny_model, tmp / f"adapter-{n}", n) for n in (1, 2, 3, 4)}
        try:
            yield Setup(services, engine, adapters, shm)
        finally:
            engine.stop()
            services.db.dispose()
            shutil.rmtree(shm, ignore_errors=True)


def trained_run(setup: Setup, version: int) -> FinetuneRun:
    """A run that passed its gate: sealed, then started as a canary."""
    services = setup.services
    with services.db.session() as session:
        run = FinetuneRun(
            alias=ALIAS, version=version, status="evaluating", trigger="cli", base_model=MODEL
        )
        session.add(run)
        session.commit()
        run.adapter = rollout.seal_adapter(services, run, setup.adapters[version])
        rollout.start_canary(services, session, run, services.finetune.aliases[ALIAS], actor="test")
        session.commit()
        session.expunge(run)
        return run


def weights(setup: Setup) -> dict[str, int]:
    with setup.services.db.session() as session:
        return {t.version: t.weight for t in get_alias(session, ALIAS).targets}


def loaded(setup: Setup) -> set[str]:
    data = httpx.get(f"{setup.engine.url}/v1/models", timeout=timing.scaled(10)).json()["data"]
    return {m["id"] for m in data if m.get("parent")}


def status(setup: Setup, version: str) -> str:
    with setup.services.db.session() as session:
        return get_run(session, ALIAS, version).status


def calls(setup: Setup, version: str, ok: int, failed: int) -> None:
    """API calls the gateway routed to ``version``, as its audit events record them."""
    with setup.services.db.session() as session:
        for i in range(ok + failed):
            bad = i < failed
            record(
                session,
                AuditAction.API_CHAT_COMPLETION,
                outcome="failure" if bad else "success",
                model=ALIAS,
                status_code=502 if bad else 200,
                route={"alias": ALIAS, "version": version, "base_model": MODEL},
            )
        session.commit()


def ratings(setup: Setup, version: str, good: int, bad: int) -> None:
    with setup.services.db.session() as session:
        for rating in ["good"] * good + ["bad"] * bad:
            record(
                session,
                AuditAction.API_FEEDBACK,
                model=ALIAS,
                status_code=200,
                rating=rating,
                route={"alias": ALIAS, "version": version, "base_model": MODEL},
            )
        session.commit()


def test_canary_auto_promotion_auto_rollback_and_manual_rollback(setup: Setup) -> None:
    services = setup.services
    policies = services.finetune.aliases
    v1 = trained_run(setup, 1)
    assert loaded(setup) == {v1.adapter}
    assert weights(setup) == {"base": 80, "v1": 20}
    assert (setup.shm / rollout.ADAPTERS_DIR / str(v1.adapter)).is_dir()

    calls(setup, "v1", ok=4, failed=0)
    assert rollout.decide_canaries(services, policies) == []  # not enough traffic yet
    calls(setup, "v1", ok=1, failed=0)
    assert rollout.decide_canaries(services, policies) == ["ro-bot v1: promoted after 5 requests"]
    assert status(setup, "v1") == "promoted" and weights(setup) == {"base": 0, "v1": 100}

    v2 = trained_run(setup, 2)
    assert weights(setup) == {"base": 0, "v1": 80, "v2": 20}
    assert loaded(setup) == {v1.adapter, v2.adapter}
    calls(setup, "v2", ok=6, failed=4)
    assert rollout.decide_canaries(services, policies) == [
        "ro-bot v2: rolled back (error rate 40.0%)"
    ]
    assert status(setup, "v2") == "rolled_back" and weights(setup) == {"base": 0, "v1": 100}
    assert loaded(setup) == {v1.adapter}
    assert not (setup.shm / rollout.ADAPTERS_DIR / str(v2.adapter)).exists()  # wiped
    with pytest.raises(Conflict, match="not serving"):
        rollout.rollback(services, ALIAS, "v2", "test")

    # v3 promoted by hand replaces v1; rolling v3 back brings v1 back from the vault.
    v3 = trained_run(setup, 3)
    rollout.promote(services, ALIAS, "v3", "test")
    assert status(setup, "v1") == "superseded" and loaded(setup) == {v3.adapter}
    assert weights(setup) == {"base": 0, "v3": 100}
    with pytest.raises(Conflict, match="only a canary can be promoted"):
        rollout.promote(services, ALIAS, "v3", "test")
    rollout.rollback(services, ALIAS, "v3", "test")
    assert status(setup, "v1") == "promoted" and loaded(setup) == {v1.adapter}
    assert weights(setup) == {"base": 0, "v1": 100}

    # An upstream that restarted lost its adapters: the recovery loads them again.
    httpx.post(
        f"{setup.engine.url}/v1/unload_lora_adapter",
        json={"lora_name": v1.adapter},
        timeout=timing.scaled(10),
    ).raise_for_status()
    assert loaded(setup) == set()
    assert rollout.reload_serving(services) == 1
    assert loaded(setup) == {v1.adapter}

    # Callers' ratings (POST /v1/feedback) count too, once there are enough of them.
    trained_run(setup, 4)
    calls(setup, "v4", ok=3, failed=0)
    ratings(setup, "v4", good=6, bad=3)
    assert rollout.decide_canaries(services, policies) == []  # 9 ratings: too few yet
    ratings(setup, "v4", good=0, bad=1)
    assert rollout.decide_canaries(services, policies) == [
        "ro-bot v4: rolled back (4 of 10 ratings bad)"
    ]
    assert weights(setup) == {"base": 0, "v1": 100}

    rollout.rollback(services, ALIAS, "v1", "test")
    assert weights(setup) == {"base": 100} and loaded(setup) == set()
