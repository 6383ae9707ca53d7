"""``appliance finetune``: datasets, runs, their status, promote and rollback.

appliance finetune dataset import ALIAS FILE --source NAME
appliance finetune dataset list [ALIAS]
appliance finetune run ALIAS [--now]
appliance finetune status [ALIAS] [--json]
appliance finetune promote ALIAS VERSION
appliance finetune rollback ALIAS VERSION
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.cli.support import actor as _actor
from appliance.cli.support import fails_cleanly as _fails_cleanly
from appliance.cli.support import services as _services
from appliance.models import FinetuneRun


@click.group("finetune")
def finetune() -> None:
    """Scheduled incremental LoRA fine-tunes of model aliases."""


@finetune.group("dataset")
def dataset() -> None:
    """Versioned training datasets (JSONL of chat messages)."""


@dataset.command("import")
@click.argument("alias")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--source", default="import", show_default=True, help="source label (weights)")
@_fails_cleanly
def dataset_import(alias: str, file: Path, source: str) -> None:
    """Desensitize FILE's records and store them as ALIAS's next dataset version."""
    from appliance.finetune.datasets import import_dataset
    from appliance.upstream.aliases import get_alias

    services = _services()
    with services.db.session() as session:
        get_alias(session, alias)
        report = import_dataset(
            session,
            alias,
            file,
            source=source,
            privacy=services.privacy,
            hash_key=services.derived_key("privacy-hash"),
            actor=_actor(),
        )
        record(
            session,
            AuditAction.FINETUNE_DATASET_IMPORT,
            actor=_actor(),
            target=f"{alias}@dataset-{report.dataset.version}",
            context=CLI_CONTEXT,
            source=source,
            sha256=report.dataset.sha256,
            records=report.kept,
            dropped_blocked=report.dropped_blocked,
        )
        session.commit()
        found = ", ".join(f"{k} {v}" for k, v in sorted(report.found.items())) or "none"
        click.echo(
            f"imported {alias} dataset {report.dataset.version}: {report.kept} records, "
            f"{report.dropped_blocked} dropped (blocked personal data); desensitized: {found}"
        )


@dataset.command("list")
@click.argument("alias", required=False)
@_fails_cleanly
def dataset_list(alias: str | None) -> None:
    """Datasets per alias: version, source, records, file and its SHA-256."""
    from appliance.finetune.datasets import list_datasets

    with _services().db.session() as session:
        for d in list_datasets(session, alias):
            click.echo(
                f"{d.alias}\t{d.version}\t{d.source}\t{d.records}\t{d.filename}\t{d.sha256[:16]}"
            )


@finetune.command("run")
@click.argument("alias")
@click.option("--now", is_flag=True, help="train here, in the foreground, instead of queueing")
@_fails_cleanly
def run(alias: str, now: bool) -> None:
    """Start a fine-tune of ALIAS (skipped, with the reason, without enough new data)."""
    from appliance.finetune import service

    services = _services()
    enqueue = None if now else _enqueue(services)
    started = service.request_run(services, alias, trigger="cli", actor=_actor(), enqueue=enqueue)
    if started.status == "skipped":
        click.echo(f"skipped {alias} {started.label}: {started.reason}")
        return
    if not now:
        click.echo(f"queued {alias} {started.label} on the train queue (task {started.task_id})")
        return
    click.echo(f"training {alias} {started.label} here")
    done = service.execute_run(services, started.id, report=_print_progress)
    click.echo(_summary(done))


def _enqueue(services: Any) -> Any:
    from appliance.tasks import create_celery, enqueue_run

    app = create_celery(services.settings)
    return lambda run_id: enqueue_run(app, run_id)


def _print_progress(progress: dict[str, Any]) -> None:
    eta = progress.get("eta_s")
    click.echo(
        f"step {progress['step']}/{progress['total_steps']} loss {progress['loss']:.4f}"
        + (f" eta {eta:.0f}s" if eta is not None else ""),
        err=True,
    )


def _summary(run: FinetuneRun) -> str:
    text = f"{run.alias} {run.label}: {run.status}"
    return f"{text} ({run.reason})" if run.reason else text


@finetune.command("status")
@click.argument("alias", required=False)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per run")
@_fails_cleanly
def status(alias: str | None, as_json: bool) -> None:
    """Runs, newest first: version, status, progress, loss, ETA, gate and reason."""
    from appliance.finetune.runs import list_runs

    with _services().db.session() as session:
        rows = list_runs(session, alias)
        if as_json:
            for r in rows:
                click.echo(json.dumps(_as_dict(r), ensure_ascii=False))
            return
        click.echo("ALIAS\tVERSION\tSTATUS\tSTEP\tLOSS\tETA\tTRIGGER\tREASON")
        for r in rows:
            loss = f"{r.loss:.4f}" if r.loss is not None else "-"
            eta = f"{r.eta_s:.0f}s" if r.eta_s is not None and r.status == "training" else "-"
            click.echo(
                f"{r.alias}\t{r.label}\t{r.status}\t{r.step}/{r.total_steps}\t{loss}\t{eta}"
                f"\t{r.trigger}\t{r.reason or ''}"
            )


def _as_dict(run: FinetuneRun) -> dict[str, Any]:
    return {
        "alias": run.alias,
        "version": run.label,
        "status": run.status,
        "reason": run.reason,
        "trigger": run.trigger,
        "step": run.step,
        "total_steps": run.total_steps,
        "loss": run.loss,
        "eta_s": run.eta_s,
        "tokens_per_s": run.tokens_per_s,
        "resumed_from": run.resumed_from,
        "adapter": run.adapter,
        "base_model": run.base_model,
        "data": run.data_report,
        "gate": run.gate_report,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


@finetune.command("promote")
@click.argument("alias")
@click.argument("version")
@_fails_cleanly
def promote(alias: str, version: str) -> None:
    """Give VERSION (a canary) all of ALIAS's traffic."""
    from appliance.finetune import rollout

    done = rollout.promote(_services(), alias, version, _actor())
    click.echo(f"promoted {alias} {done.label}")


@finetune.command("rollback")
@click.argument("alias")
@click.argument("version")
@_fails_cleanly
def rollback(alias: str, version: str) -> None:
    """Take VERSION out of service; traffic returns to the version before it (or base)."""
    from appliance.finetune import rollout

    done = rollout.rollback(_services(), alias, version, _actor())
    click.echo(f"rolled back {alias} {done.label}")
