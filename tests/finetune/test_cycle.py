"""The whole fine-tune loop on the tiny model, with a real Celery worker on Redis.

Import a dataset (CLI) → ``appliance finetune run`` queues it on the train queue → the
worker desensitizes, filters, trains a LoRA (progress as Celery task state), gates it,
seals it into the vault and hot-loads it into the running built-in engine → requests to
the alias through the gateway (official OpenAI SDK) show the new answers at the canary
share → promote, rollback. Then: a killed worker resumes from its checkpoint; an adapter
trained on shuffled labels is sealed but never served; too little data is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import openai
import pytest
from celery.result import AsyncResult
from sqlalchemy import select

from appliance.api.app import create_app as create_api
from appliance.auth.api_keys import create_api_key
from appliance.auth.users import create_user
from appliance.bootstrap import init_home
from appliance.config import SHIPPED_POLICIES
from appliance.engine.adapters import LoraOptions
from appliance.engine.server import create_app as create_engine
from appliance.errors import Conflict
from appliance.finetune import rollout, service
from appliance.finetune.runs import get_run, lock_of
from appliance.models import AuditEvent, FinetuneRun, Upstream
from appliance.privacy.transform import Pseudonyms, desensitize
from appliance.services import Services, build_services
from appliance.tasks import FINETUNE_RECOVER_TASK, create_celery
from appliance.upstream.aliases import add_alias, get_alias
from appliance.upstream.registry import add_model
from appliance.vault.factory import build_vault
from tests import timing
from tests.conftest import (
    LiveServer,
    flushed_redis,
    make_settings,
    scratch_pg_database,
    unique,
    worker_redis_db,
)
from tests.finetune import synthetic

REDIS_DB = worker_redis_db()
MODEL = "tiny-ft"
ALIAS = "support-bot"
SHUFFLED_ALIAS = "shuffled-bot"
RESUME_ALIAS = "resume-bot"
CANARY_WEIGHT = 50
LEASE_S = 5
MAX_TOKENS = 32
ACTIVE = ("queued", "preparing", "training", "evaluating")
# How long a training run may take to finish (times APPLIANCE_TEST_TIME_FACTOR): a run
# takes ~30 s on an idle 2-core machine, but the whole cycle once took 272 s on a loaded
# one; this is three times that, and each long test's pytest-timeout leaves room for it.
RUN_DEADLINE_S = 820
LONG_TEST_TIMEOUT_S = 1500

POLICY = f"""
defaults:
  schedule: "0 3 * * 0"
  lora: {{r: {synthetic.LORA.r}, alpha: {synthetic.LORA.alpha}, dropout: 0.0,
          target_modules: {list(synthetic.LORA.target_modules)}}}
  training:
    learning_rate: {synthetic.TRAINING.learning_rate}
    warmup_ratio: {synthetic.TRAINING.warmup_ratio}
    epochs: {synthetic.TRAINING.epochs}
    batch_size: {synthetic.TRAINING.batch_size}
    gradient_accumulation: {synthetic.TRAINING.gradient_accumulation}
    checkpoint_every: {synthetic.TRAINING.checkpoint_every}
    max_seq_len: {synthetic.TRAINING.max_seq_len}
  data:
    min_new_records: 100
    replay_fraction: 0.2
    near_duplicate: 1.0        # the synthetic tickets share most of their words
    domain_similarity: 0.0
    heldout_fraction: 0.1
    regression: REGRESSION
  gate:
    max_perplexity_ratio: 1.0
    min_task_metric: 0.5
    max_general_regression: 1.0   # a random two-layer model's general text is noise
    canaries: 2
  rollout:
    canary_weight: {CANARY_WEIGHT}
aliases:
  {ALIAS}: {{}}
  # Shorter runs where learning the task is not the point.
  {SHUFFLED_ALIAS}: {{training: {{epochs: 2}}}}
  {RESUME_ALIAS}: {{training: {{epochs: 2, checkpoint_every: 4}}}}
"""


@dataclass
class Stack:
    services: Services
    env: dict[str, str]
    engine: LiveServer
    gateway: LiveServer
    key: str
    celery: Any
    tmp: Path
    worker: subprocess.Popen[bytes] | None = None
    logs: list[IO[bytes]] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "appliance", "finetune", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timing.scaled(120),
            check=False,
        )

    def start_worker(self) -> None:
        self.logs = self.logs or []
        log = (self.tmp / f"worker-{len(self.logs)}.log").open("wb")
        self.logs.append(log)
        argv = [sys.executable, "-m", "celery", "-A", "appliance.worker", "worker",
                "--queues", "celery,train", "--concurrency", "1", "--loglevel", "INFO"]  # fmt: skip
        self.worker = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, sig)
            self.worker.wait(timing.scaled(30))
        self.worker = None

    def run(self, alias: str, version: str) -> FinetuneRun:
        with self.services.db.session() as session:
            run = get_run(session, alias, version)
            session.expunge(run)
            return run


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("cycle")
    policies = tmp / "policies"
    policies.mkdir()
    for path in SHIPPED_POLICIES.iterdir():
        shutil.copy(path, policies / path.name)
    regression = tmp / "regression.jsonl"
    regression.write_text("".join(json.dumps(r) + "\n" for r in synthetic.general_records()))
    (policies / "finetune.yaml").write_text(POLICY.replace("REGRESSION", str(regression)))
    shm = Path("/dev/shm") / unique("appliance-cycle")
    with scratch_pg_database("appliance_cycle") as url, flushed_redis(REDIS_DB) as broker:
        overrides = {
            "database_url": url,
            "broker_url": broker,
            "policies_dir": str(policies),
            "vault_tmpfs_dir": str(shm),
            "finetune_lease_s": LEASE_S,
            "health_interval_s": 3600,
        }
        settings = make_settings(tmp / "home", **overrides)
        services = build_services(settings)
        init_home(services)
        lora = LoraOptions(runtime_updates=True, max_loras=2, max_lora_rank=16)
        engine = LiveServer(create_engine(tiny_model, MODEL, lora))
        with services.db.session() as session:
            model = add_model(session, MODEL, path=tiny_model)
            model.upstreams = [Upstream(url=engine.url)]
            for alias in (ALIAS, SHUFFLED_ALIAS, RESUME_ALIAS):
                add_alias(session, alias, [(MODEL, None, 100, "base")])
            user, _ = create_user(session, unique("app"), ["developer"])
            new_key = create_api_key(session, user, "cycle")
            new_key.key.requests_per_minute = 10_000  # the test sends ~150 calls a minute
            key = new_key.plaintext
            session.commit()
        gateway = LiveServer(create_api(services=services))
        env = {
            **os.environ,
            "APPLIANCE_HOME": str(settings.home),
            **{f"APPLIANCE_{k.upper()}": str(v) for k, v in overrides.items()},
        }
        celery = create_celery(settings)
        stack = Stack(services, env, engine, gateway, key, celery, tmp)
        try:
            yield stack
        finally:
            stack.kill_worker(signal.SIGTERM)
            for log in stack.logs or []:
                log.close()
            gateway.stop()
            engine.stop()
            services.db.dispose()
            shutil.rmtree(shm, ignore_errors=True)


def write_dataset(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def queued_version(output: str, alias: str = ALIAS) -> str:
    match = re.search(rf"queued {alias} (v\d+) on the train queue", output)
    assert match, output
    return match.group(1)


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    started, deadline = time.monotonic(), timing.deadline(timeout_s)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timing.scaled(timeout_s):.0f} s: {what}")
        time.sleep(0.1)
    print(f"{what}: {time.monotonic() - started:.1f} s (deadline {timing.scaled(timeout_s):.0f} s)")


def engine_answer(stack: Stack, served: str, question: str) -> str:
    """The engine's answer to what the gateway would send it (the ticket's signature, a
    name, pseudonymized), restored as the gateway restores it for the caller."""
    policy, pseudonyms = stack.services.privacy, Pseudonyms()
    actions = policy.actions_for()
    messages = [
        {**m, "content": desensitize(m["content"], actions, pseudonyms, find=policy.find).text}
        for m in PROMPTS[question]
    ]
    response = httpx.post(
        f"{stack.engine.url}/v1/chat/completions",
        json={"model": served, "messages": messages, "temperature": 0, "max_tokens": MAX_TOKENS},
        timeout=timing.scaled(60),
    )
    response.raise_for_status()
    return pseudonyms.restore(str(response.json()["choices"][0]["message"]["content"]))


def gateway_answers(stack: Stack, questions: list[str]) -> list[str]:
    client = openai.OpenAI(base_url=f"{stack.gateway.url}/v1", api_key=stack.key, max_retries=0)
    answers = []
    for question in questions:
        completion = client.chat.completions.create(
            model=ALIAS,
            messages=PROMPTS[question],  # type: ignore[arg-type]
            temperature=0,
            max_tokens=MAX_TOKENS,
        )
        answers.append(completion.choices[0].message.content or "")
    return answers


PROMPTS: dict[str, list[dict[str, str]]] = {}  # a held-out question -> the messages asking it


def prompt_of(record: dict[str, Any]) -> list[dict[str, str]]:
    """A record's messages up to its answer (what a caller would send)."""
    return [dict(m) for m in record["messages"][:-1]]


def served_adapters(stack: Stack) -> set[str]:
    listed = httpx.get(f"{stack.engine.url}/v1/models", timeout=timing.scaled(10)).json()["data"]
    return {m["id"] for m in listed if m.get("parent")}


def actions(stack: Stack, target_prefix: str) -> list[str]:
    with stack.services.db.session() as session:
        rows = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target.like(f"{target_prefix}%"))
            .order_by(AuditEvent.seq)
        )
        return list(rows)


def test_a_run_without_enough_new_data_is_skipped_with_the_reason(stack: Stack) -> None:
    done = stack.cli("run", ALIAS)
    assert done.returncode == 0, done.stderr
    assert "skipped support-bot v1: too little new data: 0 new records so far" in done.stdout
    assert "the policy needs 100" in done.stdout
    status = stack.cli("status", ALIAS, "--json")
    assert json.loads(status.stdout.splitlines()[0])["status"] == "skipped"
    unknown = stack.cli("run", "no-such-alias")
    assert unknown.returncode == 1 and "is not fine-tuned" in unknown.stderr


@pytest.mark.slow  # ~40 s on an idle machine, 272 s on a loaded one
@pytest.mark.timeout(LONG_TEST_TIMEOUT_S)
def test_the_whole_cycle_with_a_real_worker(stack: Stack) -> None:
    dataset = write_dataset(stack.tmp / "tickets.jsonl", synthetic.tickets(240, seed=0))
    imported = stack.cli("dataset", "import", ALIAS, str(dataset), "--source", "tickets")
    assert imported.returncode == 0, imported.stderr
    assert "240 records" in imported.stdout
    unseen = synthetic.tickets(24, seed=5, heldout=True)  # phrasings training never saw
    replies = {prompt_of(r)[-1]["content"]: r["messages"][-1]["content"] for r in unseen}
    heldout = list(replies)
    PROMPTS.update({prompt_of(r)[-1]["content"]: prompt_of(r) for r in unseen})
    before = [engine_answer(stack, MODEL, q) for q in heldout]

    stack.start_worker()
    queued = stack.cli("run", ALIAS)
    assert queued.returncode == 0, queued.stderr
    version = queued_version(queued.stdout)
    task_id = stack.run(ALIAS, version).task_id
    assert task_id
    seen_progress: list[dict[str, Any]] = []

    def finished() -> bool:
        result = AsyncResult(task_id, app=stack.celery)
        if result.state == "PROGRESS" and isinstance(result.info, dict):
            seen_progress.append(result.info)
        return stack.run(ALIAS, version).status not in ACTIVE

    wait_for(finished, RUN_DEADLINE_S, "the run to finish")
    run = stack.run(ALIAS, version)
    assert run.status == "canary", (run.status, run.reason, run.gate_report)

    # It learned: loss fell, the gate passed, the task metric rose over the base model's.
    losses = [loss for _, loss in run.losses]
    assert run.total_steps > 0 and len(losses) >= 2
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    checks = {c["name"]: c for c in run.gate_report["checks"]}
    assert run.gate_report["passed"] and all(c["passed"] for c in checks.values())
    task = next(c for c in checks.values() if "exact" in c["detail"])
    assert task["value"] >= 0.5
    assert seen_progress and {"step", "total_steps", "loss"} <= set(seen_progress[-1])
    assert run.data_report["heldout"] > 0 and run.data_report["new"] == 240

    # Sealed in the vault, loaded into the running engine (no restart), half the traffic.
    assert run.adapter is not None and run.adapter in build_vault(stack.services.settings).names()
    assert served_adapters(stack) == {run.adapter}
    after = [engine_answer(stack, run.adapter, q) for q in heldout]
    correct = sum(a.strip() == replies[q] for q, a in zip(heldout, after, strict=True))
    assert correct >= 0.5 * len(heldout), list(zip(heldout, after, strict=True))[:6]
    assert sum(b.strip() == replies[q] for q, b in zip(heldout, before, strict=True)) < correct
    with stack.services.db.session() as session:
        weights = {t.version: t.weight for t in get_alias(session, ALIAS).targets}
    assert weights == {"base": 100 - CANARY_WEIGHT, version: CANARY_WEIGHT}
    questions = heldout * 3
    routed = gateway_answers(stack, questions)
    by_adapter = dict(zip(heldout, after, strict=True))
    by_base = dict(zip(heldout, before, strict=True))
    new_behaviour = 0
    for question, answer in zip(questions, routed, strict=True):
        assert answer in (by_adapter[question], by_base[question])
        if answer == by_adapter[question] and answer != by_base[question]:
            new_behaviour += 1
    distinct = sum(by_adapter[q] != by_base[q] for q in questions)
    assert 0.25 * distinct <= new_behaviour <= 0.75 * distinct  # the canary's 50 %

    # Promote: all traffic to v2. Rollback: the base model's answers again, adapter gone.
    promoted = stack.cli("promote", ALIAS, version)
    assert promoted.returncode == 0 and f"promoted support-bot {version}" in promoted.stdout
    time.sleep(1.1)  # the gateway's registry cache
    assert gateway_answers(stack, heldout) == after
    rolled = stack.cli("rollback", ALIAS, version)
    assert rolled.returncode == 0 and f"rolled back support-bot {version}" in rolled.stdout
    time.sleep(1.1)
    assert gateway_answers(stack, heldout) == before
    assert served_adapters(stack) == set()
    again = stack.cli("rollback", ALIAS, version)
    assert again.returncode == 1 and "not serving" in again.stderr
    assert actions(stack, f"{ALIAS}@{version}") == [
        "admin.finetune.run.request",
        "system.finetune.run.start",
        "system.finetune.run.trained",
        "system.finetune.seal",
        "system.finetune.gate",
        "admin.finetune.canary",
        "admin.finetune.promote",
        "admin.finetune.rollback",
    ]


@pytest.mark.slow  # ~25 s on an idle machine: trains, is killed, waits out the lease, resumes
@pytest.mark.timeout(LONG_TEST_TIMEOUT_S)
def test_a_killed_worker_resumes_from_its_last_checkpoint(stack: Stack) -> None:
    dataset = write_dataset(stack.tmp / "resume.jsonl", synthetic.tickets(240, seed=1))
    assert stack.cli("dataset", "import", RESUME_ALIAS, str(dataset)).returncode == 0
    if stack.worker is None:
        stack.start_worker()
    queued = stack.cli("run", RESUME_ALIAS)
    version = queued_version(queued.stdout + queued.stderr, RESUME_ALIAS)
    checkpoint = 4
    wait_for(lambda: stack.run(RESUME_ALIAS, version).step >= checkpoint + 1, 180, "a checkpoint")
    stack.kill_worker()
    killed_at = stack.run(RESUME_ALIAS, version)
    assert killed_at.status == "training" and killed_at.step < killed_at.total_steps

    # The lease outlives the worker: no second run of the alias meanwhile.
    with stack.services.db.session() as session:
        lock = lock_of(session, RESUME_ALIAS)
        assert lock is not None and lock.run_id == killed_at.id
    with pytest.raises(Conflict, match="already training"):
        service.request_run(stack.services, RESUME_ALIAS, trigger="cli", actor="t", enqueue=None)

    time.sleep(LEASE_S + 0.5)
    stack.start_worker()
    stack.celery.send_task(FINETUNE_RECOVER_TASK)  # what beat sends every minute
    wait_for(
        lambda: stack.run(RESUME_ALIAS, version).status not in ACTIVE,
        RUN_DEADLINE_S,
        "the resumed run to finish",
    )
    run = stack.run(RESUME_ALIAS, version)
    assert run.resumed_from is not None and run.resumed_from % checkpoint == 0
    # The checkpoint of the step being reported when the worker died may have been written.
    assert checkpoint <= run.resumed_from <= killed_at.step + 1
    assert run.status in ("canary", "rejected"), (run.status, run.reason)
    assert run.gate_report["checks"] and run.step == run.total_steps
    # The loss curve is whole and has each step once, however the kill fell.
    assert [step for step, _ in run.losses] == list(range(1, run.total_steps + 1))
    if run.status == "canary":
        rollout.rollback(stack.services, RESUME_ALIAS, version, "test")


@pytest.mark.slow  # several seconds (subprocesses); in make test, not make check
def test_shuffled_labels_are_sealed_but_never_served(stack: Stack) -> None:
    dataset = write_dataset(
        stack.tmp / "shuffled.jsonl", synthetic.tickets(240, seed=0, shuffled=True)
    )
    imported = stack.cli("dataset", "import", SHUFFLED_ALIAS, str(dataset))
    assert imported.returncode == 0, imported.stderr
    queued = service.request_run(
        stack.services, SHUFFLED_ALIAS, trigger="cli", actor="t", enqueue=None
    )
    run = service.execute_run(stack.services, queued.id)
    assert run.status == "rejected"
    assert run.reason is not None and "gate failed" in run.reason and "exact match" in run.reason
    assert run.adapter in build_vault(stack.services.settings).names()  # kept, sealed
    assert run.adapter not in served_adapters(stack)
    with stack.services.db.session() as session:
        targets = [(t.version, t.weight) for t in get_alias(session, SHUFFLED_ALIAS).targets]
    assert targets == [("base", 100)]
    assert actions(stack, f"{SHUFFLED_ALIAS}@{run.label}")[-1] == "system.finetune.gate"
