"""``appliance vault``: seal models at rest, unseal them into memory, rotate the KEK.

    appliance vault import SRC_DIR --name NAME [--cipher aes-256-gcm|sm4-gcm]
    appliance vault list
    appliance vault verify NAME
    appliance vault unseal NAME --to DIR [--allow-disk] [--check-hash]
    appliance vault wipe DIR
    appliance vault rotate-kek

Every import, unseal, verification failure, wipe and rotation is an audit event when the
home is initialised (never with key material). Failures print one line naming the model,
file and chunk, and exit 1.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from appliance.audit.events import CLI_CONTEXT, AuditAction, record
from appliance.cli.support import actor as _actor
from appliance.cli.support import services as _services
from appliance.cli.support import settings as _settings
from appliance.config import Settings
from appliance.errors import ApplianceError
from appliance.vault.factory import build_vault
from appliance.vault.format import SUITES
from appliance.vault.store import VaultIntegrityError
from appliance.vault.unseal import refuse_disk, refuse_symlink, unseal, unsealed, wipe


def _audit(action: AuditAction, target: str, outcome: str = "success", **details: Any) -> None:
    """Record an event if this home has a database (an uninitialised home has none)."""
    audit(_settings(), action, target, outcome, **details)


def audit(
    settings: Settings, action: AuditAction, target: str, outcome: str = "success", **details: Any
) -> None:
    if not settings.master_key_path.exists():
        return
    with _services().db.session() as session:
        record(
            session,
            action,
            outcome=outcome,
            actor=_actor(),
            target=target,
            context=CLI_CONTEXT,
            **details,
        )


def _failure_details(exc: ApplianceError) -> dict[str, Any]:
    if isinstance(exc, VaultIntegrityError):
        return {"file": exc.path, "chunk": exc.chunk, "reason": exc.reason}
    return {"reason": exc.message}


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr: bytes done of total, rate, ETA."""
    started = time.monotonic()
    done = 0

    def show(_item: Any) -> str:
        rate = done / max(time.monotonic() - started, 1e-6)
        return f"{_human(done)} / {_human(total)}, {_human(rate)}/s"

    with click.progressbar(
        length=max(total, 1), label=label, file=sys.stderr, show_eta=True, item_show_func=show
    ) as bar:

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n, done)

        yield advance


@contextmanager
def serving_from_vault(settings: Settings, name: str) -> Iterator[Path]:
    """``name`` unsealed into a private tmpfs directory while a server runs, then wiped;
    the unseal (or its failure) and the wipe are audited by the process that unsealed."""
    store = build_vault(settings)
    owner = os.getpid()
    directory: Path | None = None
    try:
        with unsealed(store, name, settings.vault_tmpfs_dir) as directory:
            audit(settings, AuditAction.VAULT_UNSEAL, name, to=str(directory), by="engine")
            click.echo(f"unsealed {name} to {directory} (wiped on exit)", err=True)
            yield directory
    except ApplianceError as exc:
        if directory is None:
            if isinstance(exc, VaultIntegrityError):
                details = _failure_details(exc)
                audit(settings, AuditAction.VAULT_VERIFY_FAILED, name, "failure", **details)
            audit(settings, AuditAction.VAULT_UNSEAL, name, "failure", reason=exc.message)
        raise
    finally:
        if directory is not None and os.getpid() == owner:
            audit(settings, AuditAction.VAULT_WIPE, str(directory), model=name, by="engine")
            click.echo(f"wiped {directory}", err=True)


def _fail(exc: ApplianceError) -> NoReturn:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)


@click.group("vault")
def vault() -> None:
    """Encrypted model storage: import, verify, unseal to tmpfs, wipe, rotate the KEK."""


@vault.command("import")
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="name of the sealed model")
@click.option(
    "--cipher", type=click.Choice(sorted(SUITES)), default="aes-256-gcm", show_default=True
)
def vault_import(src_dir: Path, name: str, cipher: str) -> None:
    """Seal a model or LoRA adapter directory into the vault.

    A symbolic link to a file outside SRC_DIR (or to a directory) is refused, naming it."""
    from appliance.vault.store import source_files

    try:
        store = build_vault(_settings())
        total = sum(path.stat().st_size for _, path in source_files(src_dir))
        with _progress(f"sealing {name}", total) as advance:
            manifest = store.import_dir(src_dir, name, cipher, progress=advance)
        _audit(
            AuditAction.VAULT_IMPORT,
            name,
            kind=manifest.kind,
            cipher=manifest.cipher,
            files=len(manifest.files),
            bytes=manifest.total_size,
            key_id=manifest.key_id,
            source=str(src_dir.absolute()),
        )
    except ApplianceError as exc:
        _fail(exc)
    click.echo(
        f"sealed {name} ({manifest.kind}, {len(manifest.files)} files, "
        f"{_human(manifest.total_size)}, {manifest.cipher}, key {manifest.key_id})"
    )


@vault.command("list")
def vault_list() -> None:
    """List sealed models: name, kind, cipher, files, size, key id, created."""
    try:
        store = build_vault(_settings())
        for name in store.names():
            try:
                m = store.load(name)
            except ApplianceError as exc:
                click.echo(f"{name}\tINVALID\t{exc.message}")
                continue
            click.echo(
                f"{name}\t{m.kind}\t{m.cipher}\t{len(m.files)} files\t{m.total_size} bytes"
                f"\t{m.key_id}\t{m.created_at}"
            )
    except ApplianceError as exc:
        _fail(exc)


@vault.command("verify")
@click.argument("name")
def vault_verify(name: str) -> None:
    """Check every chunk's tag and every file's SHA-256, writing no plaintext."""
    try:
        store = build_vault(_settings())
        try:
            manifest = store.load(name)
            with _progress(f"verifying {name}", manifest.total_size) as advance:
                store.verify(name, progress=advance)
        except ApplianceError as exc:
            _audit(AuditAction.VAULT_VERIFY_FAILED, name, "failure", **_failure_details(exc))
            raise
        _audit(AuditAction.VAULT_VERIFY, name, files=len(manifest.files))
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"{name}: OK ({len(manifest.files)} files, {manifest.total_size} bytes)")


@vault.command("unseal")
@click.argument("name")
@click.option("--to", "dest", required=True, type=click.Path(path_type=Path))
@click.option("--allow-disk", is_flag=True, help="allow a directory that is not on tmpfs")
@click.option("--check-hash", is_flag=True, help="also check each file's SHA-256 (slower)")
def vault_unseal(name: str, dest: Path, allow_disk: bool, check_hash: bool) -> None:
    """Decrypt NAME into DIR (tmpfs, not a symbolic link), checking every chunk; all or
    nothing."""
    try:
        store = build_vault(_settings())
        try:
            refuse_symlink(dest)
            if not allow_disk:
                refuse_disk(dest)
            manifest = store.load(name)
            with _progress(f"unsealing {name}", manifest.total_size) as advance:
                unseal(
                    store,
                    name,
                    dest,
                    allow_disk=allow_disk,
                    hash_check=check_hash,
                    progress=advance,
                )
        except VaultIntegrityError as exc:
            _audit(AuditAction.VAULT_VERIFY_FAILED, name, "failure", **_failure_details(exc))
            _audit(AuditAction.VAULT_UNSEAL, name, "failure", to=str(dest), reason=exc.message)
            raise
        except ApplianceError as exc:
            _audit(AuditAction.VAULT_UNSEAL, name, "failure", to=str(dest), reason=exc.message)
            raise
        _audit(AuditAction.VAULT_UNSEAL, name, to=str(dest.absolute()), allow_disk=allow_disk)
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"unsealed {name} to {dest} ({len(manifest.files)} files)")


@vault.command("wipe")
@click.argument("directory", type=click.Path(path_type=Path))
def vault_wipe(directory: Path) -> None:
    """Remove an unsealed model directory (nothing to do if it is gone)."""
    try:
        report = wipe(directory)
        if report is None:
            click.echo(f"{directory}: nothing to wipe")
            return
        _audit(
            AuditAction.VAULT_WIPE,
            str(report.directory),
            files=report.files,
            bytes=report.bytes,
            overwritten=report.overwritten,
        )
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"wiped {report.directory} ({report.files} files, {report.bytes} bytes)")


@vault.command("rotate-kek")
def vault_rotate_kek() -> None:
    """Rewrap every data key under a new KEK (no data re-encrypted); crash-safe."""
    try:
        store = build_vault(_settings())
        try:
            report = store.rotate(
                on_step=lambda step, detail: click.echo(f"{step}: {detail}", err=True)
            )
        except ApplianceError as exc:
            _audit(AuditAction.VAULT_ROTATE, "vault", "failure", reason=exc.message)
            raise
        _audit(
            AuditAction.VAULT_ROTATE,
            "vault",
            key_id=report.key_id,
            rewrapped=report.rewrapped,
            retired=report.retired,
        )
    except ApplianceError as exc:
        _fail(exc)
    click.echo(
        f"KEK is now {report.key_id}: {len(report.rewrapped)} models rewrapped, "
        f"{len(report.unchanged)} already under it, retired {', '.join(report.retired) or 'none'}"
    )
