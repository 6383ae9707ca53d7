"""Sealing an adapter, serving it (hot-loaded, no restart) at a canary share, promoting it,
rolling it back, and deciding that automatically from live traffic.

An alias's targets carry the traffic split: its base model (no adapter) and one target per
serving version (``adapter`` = the sealed adapter's name, ``version`` = ``v3``). A served
adapter is unsealed into a private tmpfs directory and loaded into every replica of the
base model through vLLM's ``/v1/load_lora_adapter`` (the built-in engine speaks the same
endpoints); taking it out of service unloads it and wipes that directory.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit.events import AuditAction, record
from appliance.errors import ApplianceError, Conflict, InvalidRequest, NotFound
from appliance.finetune import runs
from appliance.finetune.context import FinetuneServices
from appliance.finetune.policy import AliasPolicy
from appliance.models import AliasTarget, AuditEvent, FinetuneRun, Model, Upstream, utcnow
from appliance.models.finetune import RUN_SERVING
from appliance.upstream import lora
from appliance.upstream.aliases import get_alias
from appliance.upstream.credentials import UpstreamCredentials
from appliance.vault.factory import build_vault
from appliance.vault.store import Vault
from appliance.vault.unseal import is_unsealed_dir, refuse_disk, unseal, unsealed, wipe

log = logging.getLogger(__name__)
LOAD_TIMEOUT_S = 120.0
ADAPTERS_DIR = "appliance-adapters"


def adapter_name(alias: str, version: int) -> str:
    """The adapter's name in the vault and on the upstreams: ``ft-<alias>-v<N>``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", alias).strip("-.")[:48] or "alias"
    return f"ft-{safe}-v{version}"


def vault_of(services: FinetuneServices) -> Vault:
    return build_vault(services.settings)


def seal_adapter(services: FinetuneServices, run: FinetuneRun, adapter_dir: Path) -> str:
    """Encrypt the trained adapter into the vault under the run's adapter name."""
    name = adapter_name(run.alias, run.version)
    store = vault_of(services)
    if name in store.names():  # a resumed run sealed it before its worker died
        return name
    store.import_dir(adapter_dir, name)
    return name


@contextmanager
def unsealed_model(services: FinetuneServices, model: Model) -> Iterator[Path]:
    """The base model's weights: its directory, or unsealed from the vault for the block."""
    if model.path and (Path(model.path) / "config.json").is_file():
        yield Path(model.path)
        return
    store = vault_of(services)
    if model.name not in store.names():
        raise NotFound(
            f"the weights of {model.name!r} are neither a local directory nor in the vault"
        )
    with unsealed(store, model.name, services.settings.vault_tmpfs_dir) as directory:
        yield directory


@contextmanager
def unsealed_adapter(services: FinetuneServices, name: str) -> Iterator[Path]:
    with unsealed(vault_of(services), name, services.settings.vault_tmpfs_dir) as directory:
        yield directory


# ------------------------------------------------------------------ loading adapters


def served_dir(services: FinetuneServices, name: str) -> Path:
    return services.settings.vault_tmpfs_dir / ADAPTERS_DIR / name


def _auth(services: FinetuneServices, upstream: Upstream) -> list[str]:
    """What to send ``upstream`` (its key, or the engine key; then the one a rotation
    replaced, while it is accepted)."""
    credentials = UpstreamCredentials.of(services.settings, services.derived_key)
    sent = credentials.authorization(upstream.url, upstream.credential)
    fallback = credentials.fallback(upstream.url, upstream.credential)
    return [value for value in (sent, fallback) if value is not None]


def load_everywhere(services: FinetuneServices, model: Model, name: str) -> Path:
    """Unseal ``name`` to tmpfs (once) and load it into every replica of ``model``."""
    directory = served_dir(services, name)
    refuse_disk(directory)
    if not is_unsealed_dir(directory):
        if directory.exists():
            wipe(directory)
        unseal(vault_of(services), name, directory)
    for upstream in model.upstreams:
        lora.load_adapter(
            upstream.url,
            name,
            str(directory),
            timeout=LOAD_TIMEOUT_S,
            auth=_auth(services, upstream),
        )
    return directory


def unload_everywhere(services: FinetuneServices, model: Model, name: str) -> None:
    """Unload ``name`` from every replica that answers, then wipe its unsealed copy."""
    for upstream in model.upstreams:
        try:
            lora.unload_adapter(
                upstream.url, name, timeout=LOAD_TIMEOUT_S, auth=_auth(services, upstream)
            )
        except ApplianceError as exc:  # a replica that is down has nothing loaded
            log.warning("could not unload %s from %s: %s", name, upstream.url, exc.message)
    directory = served_dir(services, name)
    if directory.exists():
        wipe(directory)


def reload_serving(services: FinetuneServices) -> int:
    """Load every serving adapter into replicas that lost it (a restarted upstream)."""
    loaded = 0
    with services.db.session() as session:
        serving = session.scalars(
            select(FinetuneRun).where(FinetuneRun.status.in_(RUN_SERVING))
        ).all()
        for run in serving:
            model = _base_model(session, run)
            if run.adapter is None or model is None:
                continue
            try:
                load_everywhere(services, model, run.adapter)  # idempotent on the replicas
                loaded += 1
            except ApplianceError as exc:  # a replica still down: the next round tries again
                log.warning("could not reload %s: %s", run.adapter, exc.message)
    return loaded


# ------------------------------------------------------------------ traffic


def _base_model(session: Session, run: FinetuneRun) -> Model | None:
    return session.scalar(select(Model).where(Model.name == run.base_model))


def base_target(session: Session, alias: str) -> AliasTarget:
    """The alias's target without an adapter: its base model."""
    for target in get_alias(session, alias).targets:
        if target.adapter is None:
            return target
    raise InvalidRequest(f"alias {alias!r} has no base-model target (one without an adapter)")


def _target(session: Session, run: FinetuneRun) -> AliasTarget | None:
    for target in get_alias(session, run.alias).targets:
        if target.version == run.label and target.adapter == run.adapter:
            return target
    return None


def _current_target(session: Session, alias: str) -> AliasTarget:
    promoted = runs.promoted_run(session, alias)
    target = _target(session, promoted) if promoted else None
    return target or base_target(session, alias)


def start_canary(
    services: FinetuneServices, session: Session, run: FinetuneRun, policy: AliasPolicy, actor: str
) -> None:
    """Load the run's adapter and give it ``canary_weight`` % of the alias's traffic."""
    model = _base_model(session, run)
    if model is None or run.adapter is None:
        raise InvalidRequest(f"run v{run.version} of {run.alias!r} has no sealed adapter")
    load_everywhere(services, model, run.adapter)
    alias = get_alias(session, run.alias)
    current = _current_target(session, run.alias)
    share = policy.rollout.canary_weight
    for target in alias.targets:
        target.weight = 100 - share if target is current else 0
    alias.targets.append(
        AliasTarget(model=model, adapter=run.adapter, weight=share, version=run.label)
    )
    run.status = "canary"
    record(
        session,
        AuditAction.FINETUNE_CANARY,
        actor=actor,
        target=f"{run.alias}@{run.label}",
        adapter=run.adapter,
        weight=share,
    )
    session.flush()


def promote(services: FinetuneServices, alias: str, version: str, actor: str) -> FinetuneRun:
    """All of the alias's traffic to ``version`` (a canary); the version it replaces is
    superseded, its adapter unloaded."""
    with services.db.session() as session:
        run = runs.get_run(session, alias, version)
        if run.status != "canary":
            raise Conflict(f"{alias} {run.label} is {run.status}; only a canary can be promoted")
        old = runs.promoted_run(session, alias)
        target = _target(session, run)
        if target is None:
            raise Conflict(f"{alias} {run.label} has no target in the alias (changed by hand?)")
        alias_row = get_alias(session, alias)
        for other in list(alias_row.targets):
            if other is target:
                other.weight = 100
            elif other.adapter is None:
                other.weight = 0  # the base stays, drained, for a rollback
            else:
                alias_row.targets.remove(other)
        run.status = "promoted"
        if old is not None:
            old.status = "superseded"
        record(
            session,
            AuditAction.FINETUNE_PROMOTE,
            actor=actor,
            target=f"{alias}@{run.label}",
            replaces=old.label if old else "base",
        )
        session.commit()
        model = _base_model(session, run)
        if old is not None and old.adapter and model is not None:
            unload_everywhere(services, model, old.adapter)
        return run


def rollback(services: FinetuneServices, alias: str, version: str, actor: str) -> FinetuneRun:
    """Take ``version`` (a canary or the promoted version) out of service: traffic goes
    back to the version promoted before it, or to the base model."""
    with services.db.session() as session:
        run = runs.get_run(session, alias, version)
        if run.status not in RUN_SERVING:
            raise Conflict(
                f"{alias} {run.label} is {run.status}, not serving: nothing to roll back"
            )
        model = _base_model(session, run)
        alias_row = get_alias(session, alias)
        back_to = (
            runs.promoted_run(session, alias)
            if run.status == "canary"
            else runs.previous_promoted(session, alias, run.version)
        )
        if back_to is not None and back_to.status == "superseded" and model is not None:
            assert back_to.adapter is not None
            load_everywhere(services, model, back_to.adapter)
            alias_row.targets.append(
                AliasTarget(model=model, adapter=back_to.adapter, weight=0, version=back_to.label)
            )
            back_to.status = "promoted"
            session.flush()
        restored = _target(session, back_to) if back_to else None
        restored = restored or base_target(session, alias)
        own = _target(session, run)
        for target in list(alias_row.targets):
            if target is own:
                alias_row.targets.remove(target)
            else:
                target.weight = 100 if target is restored else 0
        run.status = "rolled_back"
        run.finished_at = run.finished_at or utcnow()
        record(
            session,
            AuditAction.FINETUNE_ROLLBACK,
            actor=actor,
            target=f"{alias}@{run.label}",
            back_to=back_to.label if back_to else "base",
        )
        session.commit()
        if run.adapter and model is not None:
            unload_everywhere(services, model, run.adapter)
        return run


# ------------------------------------------------------------------ automatic decisions


@dataclass(frozen=True)
class CanaryHealth:
    requests: int
    errors: int
    good: int = 0
    bad: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def bad_share(self) -> float:
        rated = self.good + self.bad
        return self.bad / rated if rated else 0.0


def canary_health(session: Session, run: FinetuneRun, since_hours: float = 24 * 7) -> CanaryHealth:
    """Calls the gateway routed to the canary version, how many failed (5xx or an error
    outcome), and the callers' ratings of its answers (``POST /v1/feedback``), from the
    audit trail."""
    since = utcnow() - timedelta(hours=since_hours)
    rows = session.execute(
        select(
            AuditEvent.action, AuditEvent.outcome, AuditEvent.status_code, AuditEvent.details
        ).where(
            AuditEvent.model == run.alias,
            AuditEvent.timestamp >= since,
            AuditEvent.action.like("api.%"),
        )
    ).all()
    calls = errors = good = bad = 0
    for action, outcome, status, details in rows:
        if ((details or {}).get("route") or {}).get("version") != run.label:
            continue
        if action == AuditAction.API_FEEDBACK:
            rating = (details or {}).get("rating")
            good, bad = good + (rating == "good"), bad + (rating == "bad")
            continue
        calls += 1
        errors += outcome != "success" or (status or 0) >= 500
    return CanaryHealth(calls, errors, good, bad)


def decide_canaries(services: FinetuneServices, policies: dict[str, AliasPolicy]) -> list[str]:
    """Roll back a canary whose error rate passed ``max_error_rate``; with ``auto_promote``,
    promote one that served ``promote_after_requests`` within it. Returns what was done."""
    decisions = []
    with services.db.session() as session:
        canaries = session.scalars(select(FinetuneRun).where(FinetuneRun.status == "canary")).all()
        pending = [(run.alias, run.label, canary_health(session, run)) for run in canaries]
    for alias, label, health in pending:
        policy = policies.get(alias)
        if policy is None or health.requests == 0:
            continue
        rated = health.good + health.bad
        if health.error_rate > policy.rollout.max_error_rate:
            rollback(services, alias, label, "policy:auto-rollback")
            decisions.append(f"{alias} {label}: rolled back (error rate {health.error_rate:.1%})")
        elif (
            rated >= policy.rollout.min_feedback
            and health.bad_share > policy.rollout.max_bad_feedback
        ):
            rollback(services, alias, label, "policy:auto-rollback")
            decisions.append(f"{alias} {label}: rolled back ({health.bad} of {rated} ratings bad)")
        elif (
            policy.rollout.auto_promote and health.requests >= policy.rollout.promote_after_requests
        ):
            promote(services, alias, label, "policy:auto-promote")
            decisions.append(f"{alias} {label}: promoted after {health.requests} requests")
    return decisions
