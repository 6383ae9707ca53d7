"""One fine-tune of an alias, start to end: request → data → train → gate → seal → canary.

``request_run`` decides whether a run starts (enough new data, none running) and queues
it; ``execute_run`` does it, on the ``train`` queue's worker, holding the alias's lease.
Every step is an audit event and leaves the run's row telling where it stands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from appliance.audit.events import AuditAction, record
from appliance.config import SHIPPED_POLICIES
from appliance.errors import ApplianceError, Conflict, NotFound, UpstreamUnavailable
from appliance.finetune import datasets, rollout, runs
from appliance.finetune.context import FinetuneServices
from appliance.finetune.policy import AliasPolicy
from appliance.finetune.quality import QualityRules, filter_records, text_of
from appliance.models import FinetuneRun, utcnow
from appliance.models.finetune import RUN_ACTIVE
from appliance.privacy.datasets import DatasetScanner
from appliance.upstream.aliases import get_alias

log = logging.getLogger(__name__)
DEFAULT_REGRESSION = "finetune-regression.jsonl"
CANARY_SOURCE = "canary"
Enqueue = Callable[[int], str | None]


def policy_for(services: FinetuneServices, alias: str) -> AliasPolicy:
    policy = services.finetune.for_alias(alias)
    if policy is None:
        raise NotFound(
            f"alias {alias!r} is not fine-tuned: add it under 'aliases' in policies/finetune.yaml"
        )
    return policy


# ------------------------------------------------------------------ requesting a run


def request_run(
    services: FinetuneServices, alias: str, *, trigger: str, actor: str, enqueue: Enqueue | None
) -> FinetuneRun:
    """Queue a run of ``alias``, or record it as skipped with the reason.

    Refused (Conflict) while another run of the alias is active; skipped while a canary
    awaits its decision, or with fewer new records than the policy's ``min_new_records``.
    ``enqueue`` sends the run to the workers and returns the task id (None: the caller
    runs it itself)."""
    policy = policy_for(services, alias)
    with services.db.session() as session:
        get_alias(session, alias)
        active = runs.active_run(session, alias)
        if active is not None:
            raise Conflict(f"{alias} {active.label} is already {active.status}")
        reason = _skip_reason(session, alias, policy)
        status = "skipped" if reason else "queued"
        run = runs.create_run(session, alias, trigger=trigger, actor=actor, status=status)
        run.reason = reason
        action = AuditAction.FINETUNE_RUN_SKIP if reason else AuditAction.FINETUNE_RUN_REQUEST
        record(session, action, actor=actor, target=f"{alias}@{run.label}", reason=reason)
        session.commit()
        run_id = run.id
    if reason is None and enqueue is not None:
        try:
            task_id = enqueue(run_id)
        except Exception as exc:  # the broker is down: the run must not stay "queued"
            known = exc if isinstance(exc, ApplianceError) else None
            message = known.message if known else f"{type(exc).__name__}: {exc}"
            reason = f"could not queue the run: {message}"[:500]
            _finish(services, run_id, "failed", reason, AuditAction.FINETUNE_RUN_FAIL, "failure")
            if known is not None:
                raise
            raise UpstreamUnavailable(reason) from None
        with services.db.session() as session:
            row = session.get(FinetuneRun, run_id)
            assert row is not None
            row.task_id = task_id
            session.commit()
    return _detached(services, run_id)


def _skip_reason(session: Session, alias: str, policy: AliasPolicy) -> str | None:
    canary = next((r for r in runs.serving_runs(session, alias) if r.status == "canary"), None)
    if canary is not None:
        return f"{canary.label} is still a canary: promote or roll it back first"
    promoted = runs.promoted_run(session, alias)
    new = datasets.count_new(session, alias, _since(promoted))
    needed = policy.data.min_new_records
    if new < needed:
        after = f"since {promoted.label}" if promoted else "so far"
        return f"too little new data: {new} new records {after}, the policy needs {needed}"
    return None


def _since(promoted: FinetuneRun | None) -> int:
    """The newest record the promoted version trained on: newer ones are "new data"."""
    return (promoted.high_water or 0) if promoted else 0


def _detached(services: FinetuneServices, run_id: int) -> FinetuneRun:
    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        assert run is not None
        session.expunge(run)
        return run


# ------------------------------------------------------------------ doing a run


Progress = Callable[[dict[str, Any]], None]


def execute_run(
    services: FinetuneServices,
    run_id: int,
    *,
    report: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FinetuneRun:
    """Do run ``run_id`` (again, after a dead worker: training resumes from its last
    checkpoint). A run that has already ended is returned as it is."""
    from appliance.finetune.training import TrainingStopped  # torch: train nodes only

    holder = f"{socket.gethostname()}:{os.getpid()}"
    ttl = services.settings.finetune_lease_s
    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        if run is None:
            raise NotFound(f"no fine-tune run {run_id}")
        if run.status not in RUN_ACTIVE:
            return _detached(services, run_id)
        alias = run.alias
        if not runs.acquire(session, alias, run_id, holder, ttl):
            lock = runs.lock_of(session, alias)
            held = f"run {lock.run_id} ({lock.holder})" if lock else "another run"
            raise Conflict(f"{alias} is locked by {held} until its lease ends")
    try:
        _run(services, run_id, holder, report, should_stop)
    except TrainingStopped:  # asked to stop: checkpointed, resumable, not a failure
        log.info("fine-tune run %s stopped at a checkpoint; it resumes when queued again", run_id)
    except Exception as exc:
        message = exc.message if isinstance(exc, ApplianceError) else f"{type(exc).__name__}: {exc}"
        log.exception("fine-tune run %s failed", run_id)
        _finish(services, run_id, "failed", message, AuditAction.FINETUNE_RUN_FAIL, "failure")
        raise
    finally:
        with services.db.session() as session:
            runs.release(session, alias, run_id)
            session.commit()
    return _detached(services, run_id)


def _run(
    services: FinetuneServices,
    run_id: int,
    holder: str,
    report: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    from appliance.finetune import evaluation, training

    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        assert run is not None
        policy = policy_for(services, run.alias)
        first_start = run.started_at is None
        run.started_at = run.started_at or utcnow()
        run.status = "preparing"
        base = rollout.base_target(session, run.alias).model
        run.base_model = base.name
        if first_start:
            record(session, AuditAction.FINETUNE_RUN_START, actor="system", target=_name(run))
        promoted = runs.promoted_run(session, run.alias)
        last_loss = promoted.source_loss if promoted else {}
        data = datasets.select_training_data(
            session, run.alias, _since(promoted), policy.data, last_loss, seed=run.id
        )
        current_adapter = promoted.adapter if promoted else None
        session.expunge(base)  # its path and upstreams stay loaded for the steps below
        session.commit()
    prepared = prepare(services, data, policy, seed=run_id)
    _update(services, run_id, data_report=prepared.report, high_water=data.high_water)
    if len(prepared.train) == 0 or len(prepared.heldout) == 0:
        _finish(
            services,
            run_id,
            "skipped",
            "no records left for training and held-out evaluation after the filters",
            AuditAction.FINETUNE_RUN_SKIP,
        )
        return

    work = services.settings.effective_finetune_dir / f"run-{run_id}"
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    canaries = evaluation.make_canaries(policy.gate.canaries, seed=run_id)
    train_records = evaluation.plant_canaries(prepared.train, canaries, copies=1)
    _update(services, run_id, status="training")

    def on_progress(p: Any) -> None:
        _progress(services, run_id, p, holder)
        if report is not None:
            report(asdict(p))

    with contextlib.ExitStack() as stack:
        base_dir = stack.enter_context(rollout.unsealed_model(services, base))
        current_dir = (
            stack.enter_context(rollout.unsealed_adapter(services, current_adapter))
            if current_adapter
            else None
        )
        result = training.train_lora(
            base_dir,
            train_records,
            work,
            lora=policy.lora,
            training=policy.training,
            seed=run_id,
            progress=on_progress,
            should_stop=should_stop,
            init_adapter_dir=current_dir,  # incremental: from the promoted version on
        )
        _update(
            services,
            run_id,
            status="evaluating",
            tokens_per_s=result.tokens_per_s,
            resumed_from=result.resumed_from,
            # The trainer's own record: whole across a resume, where the reports may have
            # missed the step whose checkpoint was written just before the worker died.
            losses=[[step, round(loss, 5)] for step, loss in enumerate(result.losses, 1)],
            # The planted canaries are not a source of data: they do not steer the weights.
            source_loss={k: v for k, v in result.per_source_loss.items() if k != CANARY_SOURCE},
        )
        _audit(services, AuditAction.FINETUNE_RUN_TRAINED, run_id, steps=result.steps)
        gate = evaluation.evaluate(
            base_dir,
            result.adapter_dir,
            current_adapter_dir=current_dir,
            heldout=prepared.heldout,
            regression=regression_set(services, policy),
            canaries=canaries,
            gate=policy.gate,
        )
    _conclude(services, run_id, result.adapter_dir, gate, policy)


def _conclude(
    services: FinetuneServices, run_id: int, adapter_dir: Path, gate: Any, policy: AliasPolicy
) -> None:
    """Seal the adapter whatever the gate said; serve it (canary) only if it passed."""
    checks = [asdict(check) for check in gate.checks]
    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        assert run is not None
        run.adapter = rollout.seal_adapter(services, run, adapter_dir)
        run.gate_report = {"passed": gate.passed, "checks": checks}
        record(session, AuditAction.FINETUNE_SEAL, actor="system", target=_name(run))
        failed = [c for c in gate.checks if not c.passed]
        record(
            session,
            AuditAction.FINETUNE_GATE,
            outcome="success" if gate.passed else "failure",
            actor="system",
            target=_name(run),
            checks={c["name"]: c["passed"] for c in checks},
        )
        if failed:
            run.status = "rejected"
            run.reason = "gate failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
            run.finished_at = utcnow()
            session.commit()
            return
        session.commit()
        rollout.start_canary(services, session, run, policy, actor="system")
        run.finished_at = utcnow()
        session.commit()


# ------------------------------------------------------------------ the data step


class Prepared:
    """Training and held-out records after desensitization and the quality filters."""

    def __init__(
        self, train: list[dict[str, Any]], heldout: list[dict[str, Any]], report: dict[str, Any]
    ) -> None:
        self.train, self.heldout, self.report = train, heldout, report


def prepare(
    services: FinetuneServices, data: datasets.TrainingData, policy: AliasPolicy, *, seed: int
) -> Prepared:
    """Desensitize again (the policy may have changed since the records were stored), drop
    what the quality filters drop, keep a held-out share of the new records for the gate,
    and mix the rest with the replay sample by source weight."""
    scanner = DatasetScanner(services.privacy, services.derived_key("privacy-hash"))
    rules = QualityRules(
        min_chars=policy.data.min_chars,
        max_chars=policy.data.max_chars,
        languages=policy.data.languages,
        near_duplicate=policy.data.near_duplicate,
        domain_similarity=policy.data.domain_similarity,
    )
    reference = _reference(policy)
    cleaned_new = _desensitized(scanner, data.new)
    cleaned_replay = _desensitized(scanner, data.replay)
    kept, quality = filter_records([*cleaned_new, *cleaned_replay], rules, reference)
    new_ids = {r["id"] for r in cleaned_new}
    heldout = [r for r in kept if r["id"] in new_ids and _held_out(r["id"], policy, seed)]
    held_ids = {r["id"] for r in heldout}
    train_pool = [dict(r) for r in kept if r["id"] not in held_ids]
    mix = datasets.weighted_mix(train_pool, data.weights, seed=seed)
    report = {
        "new": len(data.new),
        "replay": len(data.replay),
        "dropped": {
            "blocked_personal_data": scanner.report.dropped,
            **dict(quality.dropped),
        },
        "kept": len(kept),
        "heldout": len(heldout),
        "train": len(mix),
        "sources": data.by_source(),
        "weights": data.weights,
    }
    return Prepared([dict(r) for r in mix], [dict(r) for r in heldout], report)


def _desensitized(
    scanner: DatasetScanner, records: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for one in records:
        clean = scanner.record(one["id"], {"messages": one["messages"]})
        if clean is not None:
            out.append({**clean, "id": one["id"], "source": one["source"]})
    return out


def _held_out(record_id: int, policy: AliasPolicy, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < policy.data.heldout_fraction


def _reference(policy: AliasPolicy) -> list[str]:
    if not policy.data.reference:
        return []
    return [text_of(r) for r in _jsonl(Path(policy.data.reference))]


def regression_set(services: FinetuneServices, policy: AliasPolicy) -> list[dict[str, Any]]:
    """The general regression set: the policy's file, else the one shipped with the
    appliance (general questions in Chinese and English)."""
    if policy.data.regression:
        return _jsonl(Path(policy.data.regression))
    for folder in (services.settings.effective_policies_dir, SHIPPED_POLICIES):
        if (folder / DEFAULT_REGRESSION).is_file():
            return _jsonl(folder / DEFAULT_REGRESSION)
    return []


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from None
    return [json.loads(line) for line in lines if line.strip()]


# ------------------------------------------------------------------ bookkeeping


def _name(run: FinetuneRun) -> str:
    return f"{run.alias}@{run.label}"


def _update(services: FinetuneServices, run_id: int, **values: Any) -> None:
    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        assert run is not None
        for key, value in values.items():
            setattr(run, key, value)
        session.commit()


def _progress(services: FinetuneServices, run_id: int, p: Any, holder: str) -> None:
    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        assert run is not None
        run.step, run.total_steps = p.step, p.total_steps
        run.loss, run.eta_s = p.loss, p.eta_s
        run.losses = [*run.losses, [p.step, round(p.loss, 5)]]
        runs.renew(session, run.alias, run_id, services.settings.finetune_lease_s)
        session.commit()


def _finish(
    services: FinetuneServices,
    run_id: int,
    status: str,
    reason: str,
    action: AuditAction,
    outcome: str = "success",
) -> None:
    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        if run is None:
            return
        run.status, run.reason, run.finished_at = status, reason, utcnow()
        record(session, action, outcome=outcome, actor="system", target=_name(run), reason=reason)
        session.commit()


def _audit(services: FinetuneServices, action: AuditAction, run_id: int, **details: Any) -> None:
    with services.db.session() as session:
        run = session.get(FinetuneRun, run_id)
        assert run is not None
        record(session, action, actor="system", target=_name(run), **details)
        session.commit()


# ------------------------------------------------------------------ the schedule


def recover_stale(services: FinetuneServices, enqueue: Enqueue) -> list[int]:
    """Queue again the active runs whose worker died (lease over): they resume."""
    with services.db.session() as session:
        stale = [run.id for run in runs.stale_runs(session)]
    for run_id in stale:
        enqueue(run_id)
    return stale


def purge_captured(services: FinetuneServices) -> int:
    with services.db.session() as session:
        purged = datasets.purge_expired(session)
        if purged:
            record(session, AuditAction.FINETUNE_CAPTURE_PURGE, actor="system", records=purged)
        session.commit()
    return purged
