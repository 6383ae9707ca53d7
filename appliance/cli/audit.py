"""``appliance audit``: seal, verify, export, ship, status; checkpoints and the public key.

    appliance audit seal
    appliance audit verify [--from T] [--to T] [--checkpoints FILE]
    appliance audit export --format jsonl|csv [--from T] [--to T] [--bom]
    appliance audit ship [--sink file|elasticsearch] [--resend-refused]
    appliance audit status
    appliance audit content EVENT_ID       (opens an event's sealed content; audited)
    appliance audit checkpoints            (JSON lines, to keep off the appliance)
    appliance audit public-key             (PEM, to check checkpoints anywhere)

Times are ISO 8601 (``2026-11-29`` or ``2026-11-29T10:00:00+08:00``; no zone means UTC).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from appliance.audit import chain, service, shipping
from appliance.audit.checkpoints import Checkpoint, Signer, export_lines, stored
from appliance.audit.content import KEY_PURPOSE, open_sealed
from appliance.audit.ecs import csv_lines, jsonl
from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.audit.verify import verify
from appliance.cli.support import actor as _actor
from appliance.cli.support import fails_cleanly as _fails_cleanly
from appliance.cli.support import services as _services
from appliance.errors import InvalidRequest
from appliance.services import Services

EXPORT_BATCH = 5000


class When(click.ParamType):
    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


WHEN = When()


@click.group("audit")
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("seal")
@_fails_cleanly
def seal() -> None:
    """Seal every unsealed event into the chain (and sign a checkpoint), then exit."""
    services = _services()
    sealed, checkpoint = service.seal_and_checkpoint(
        services.db, services.settings, services.master_key
    )
    note = f"; checkpoint signed at position {checkpoint.chain_pos}" if checkpoint else ""
    click.echo(f"sealed {sealed.events} events; the chain ends at position {sealed.last_pos}{note}")


@audit.command("verify")
@click.option("--from", "since", type=WHEN, help="first event time (ISO 8601)")
@click.option("--to", "until", type=WHEN, help="last event time (ISO 8601)")
@click.option(
    "--checkpoints",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="exported checkpoints (JSON lines) to hold the chain to as well",
)
@_fails_cleanly
def verify_command(
    since: datetime | None, until: datetime | None, checkpoint_file: Path | None
) -> None:
    """Recompute the chain and the checkpoints; exit 1 at the first broken place."""
    services = _services()
    signer = Signer(services.master_key)
    extra = _read_checkpoints(checkpoint_file) if checkpoint_file else []
    report = verify(services.db, signer.public, since=since, until=until, checkpoints=extra)
    with services.db.session() as session:
        record(
            session,
            AuditAction.AUDIT_VERIFY,
            outcome="success" if report.ok else "failure",
            actor=_actor(),
            context=CLI_CONTEXT,
            events=report.events,
            problem=report.problem.kind if report.problem else None,
        )
    if report.problem is not None:
        p = report.problem
        click.echo(f"BROKEN: {p.kind}: {p.where} (position {p.pos}): {p.message}")
        sys.exit(1)
    click.echo(
        f"intact: {report.events} events (positions {report.first_pos}..{report.last_pos}), "
        f"{report.checkpoints} checkpoints; {report.unsealed} not sealed yet"
    )


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), required=True)
@click.option("--from", "since", type=WHEN, help="first event time (ISO 8601)")
@click.option("--to", "until", type=WHEN, help="last event time (ISO 8601)")
@click.option(
    "--bom", is_flag=True, help="CSV only: UTF-8 with a byte-order mark (Excel on Chinese Windows)"
)
@_fails_cleanly
def export(fmt: str, since: datetime | None, until: datetime | None, bom: bool) -> None:
    """Write the events as ECS documents to stdout (the export is itself audited).

    In CSV, values a spreadsheet would run as formulas are prefixed with ``'``."""
    if bom and fmt != "csv":
        raise click.UsageError("--bom applies to --format csv only")
    services = _services()
    count = 0

    def rows() -> Iterator[Any]:
        nonlocal count
        for row in _events(services, since, until):
            count += 1
            yield row

    lines = jsonl(rows()) if fmt == "jsonl" else csv_lines(rows(), bom=bom)
    if bom:  # a UTF-8 mark must be followed by UTF-8, whatever the locale's encoding
        sys.stdout.flush()
        for line in lines:
            sys.stdout.buffer.write(line.encode("utf-8"))
        sys.stdout.buffer.flush()
    else:
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
    with services.db.session() as session:
        record(
            session,
            AuditAction.AUDIT_EXPORT,
            actor=_actor(),
            context=CLI_CONTEXT,
            format=fmt,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
            events=count,
            **_bom_detail(bom),
        )


@audit.command("ship")
@click.option("--sink", type=click.Choice(["file", "elasticsearch"]), help="only this sink")
@click.option("--resend-refused", is_flag=True, help="send refused documents again")
@_fails_cleanly
def ship(sink: str | None, resend_refused: bool) -> None:
    """Ship sealed events to the sinks now, in the foreground."""
    services = _services()
    chosen = [s for s in service.sinks(services.settings) if sink is None or s.name == sink]
    if not chosen:
        raise InvalidRequest(f"the {sink} sink is not configured (set elasticsearch_url)")
    for target in chosen:
        if resend_refused:
            done = shipping.resend_refused(services.db, target)
        else:
            done = shipping.ship(services.db, target, batch=services.settings.audit_ship_batch)
        click.echo(f"{done.sink}: sent {done.events}, refused {done.refused}; at {done.cursor}")


@audit.command("status")
@_fails_cleanly
def status() -> None:
    """Where the chain, the checkpoints and each sink stand."""
    services = _services()
    pos, _ = chain.head(services.db)
    checkpoints = stored(services.db)
    click.echo(f"chain: sealed up to position {pos}; {chain.unsealed_count(services.db)} unsealed")
    last = checkpoints[-1] if checkpoints else None
    click.echo(
        f"checkpoints: {len(checkpoints)}"
        + (f", last at position {last.chain_pos} ({last.created_at.isoformat()})" if last else "")
    )
    for target in service.sinks(services.settings):
        refused = shipping.refused_events(services.db, target.name)
        click.echo(
            f"{target.name}: {shipping.lag(services.db, target.name)} behind, "
            f"{len(refused)} refused"
        )


@audit.command("content")
@click.argument("event_id")
@_fails_cleanly
def content(event_id: str) -> None:
    """Open the sealed content of an event (policy audit_content: encrypted); audited."""
    services = _services()
    with services.db.session() as session:
        row = session.execute(
            select(chain.EVENTS.c.details, chain.EVENTS.c.request_id).where(
                chain.EVENTS.c.event_id == event_id
            )
        ).one_or_none()
        if row is None:
            raise InvalidRequest(f"no audit event {event_id}")
        sealed = (row.details or {}).get("content_sealed")
        if sealed is None:
            raise InvalidRequest(f"audit event {event_id} has no sealed content")
        opened = open_sealed(services.derived_key(KEY_PURPOSE), sealed, row.request_id)
        record(
            session, AuditAction.AUDIT_CONTENT_READ, actor=_actor(), target=event_id,
            context=CLI_CONTEXT,
        )  # fmt: skip
    click.echo(json.dumps(opened, ensure_ascii=False, indent=2))


@audit.command("checkpoints")
@_fails_cleanly
def checkpoints() -> None:
    """The signed checkpoints as JSON lines: keep them off the appliance."""
    for line in export_lines(stored(_services().db)):
        sys.stdout.write(line)


@audit.command("public-key")
@_fails_cleanly
def public_key() -> None:
    """The checkpoints' Ed25519 public key (PEM)."""
    click.echo(Signer(_services().master_key).public_pem(), nl=False)


def _events(services: Services, since: datetime | None, until: datetime | None) -> Iterator[Any]:
    """Events in time order, a batch at a time (an export can be any size)."""
    events = chain.EVENTS
    after = 0
    while True:
        query = select(events).where(events.c.seq > after)
        if since is not None:
            query = query.where(events.c.timestamp >= since)
        if until is not None:
            query = query.where(events.c.timestamp <= until)
        with services.db.session() as session:
            batch = session.execute(query.order_by(events.c.seq).limit(EXPORT_BATCH)).mappings()
            rows = batch.all()
        if not rows:
            return
        yield from rows
        after = rows[-1]["seq"]


def _bom_detail(bom: bool) -> dict[str, Any]:
    return {"bom": True} if bom else {}  # only then: other exports are recorded as before


def _read_checkpoints(path: Path) -> list[Checkpoint]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            found.append(Checkpoint.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            raise InvalidRequest(f"{path}:{number}: not a checkpoint") from None
    return found
