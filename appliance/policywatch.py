"""Policies are live: every process applies an edited policy file within seconds.

Each long-running process (every API worker, the portal, the Celery worker, beat) holds a
``PolicyWatch`` over its ``Services``. Once a second it reads the policy files (a few KB
each: reading and hashing them is cheaper than trusting modification times), and when a
file's SHA-256 differs from the version in force it loads the file with the same loader
start-up uses:

- valid: the new policy replaces the old one in ``Services`` (one attribute assignment,
  so a request sees the old or the new policy, never half of each), the hooks run and a
  ``system.policy.in_force`` audit event names the process kind, the process and the
  version (the first 12 hex digits of the file's SHA-256) now in force;
- invalid (or missing): the policy in force stays, the error is logged, audited once per
  version (``system.policy.invalid``) and reported.

Each process reports what it has in force in ``policy_in_force`` (one row a process,
refreshed every ``REPORT_S``): the portal shows the version in force per process kind
and refuses an action that depends on a policy not yet in force everywhere
(``pending``). Rows not refreshed for ``LIVE_S`` belong to processes that have ended.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from appliance.audit.events import AuditAction, record
from appliance.auth.rbac import load_rbac
from appliance.content.matcher import load_built
from appliance.content.policy import empty_policy, term_files
from appliance.db import Database
from appliance.errors import PolicyError
from appliance.finetune.policy import FinetunePolicy, load_finetune_policy
from appliance.models import PolicyInForce, utcnow
from appliance.privacy.policy import load_privacy_policy

log = logging.getLogger(__name__)
INTERVAL_S = 1.0  # how often a process looks at the files
REPORT_S = 5.0  # how often it says what it has in force, changed or not
LIVE_S = 15.0  # a report older than this is a process that has ended
ABSENT = "absent"  # the version of an optional policy whose file does not exist
PROCESS_KINDS = ("api", "portal", "worker", "beat")


@dataclass(frozen=True)
class PolicyFile:
    name: str  # the file in the policies directory
    attribute: str  # the Services attribute that holds it
    load: Callable[[Path], Any]
    default: Callable[[], Any] | None = None  # optional policy: what applies without a file


POLICY_FILES = (
    PolicyFile("rbac.yaml", "rbac", load_rbac),
    PolicyFile("desensitization.yaml", "privacy", load_privacy_policy),
    PolicyFile("finetune.yaml", "finetune", load_finetune_policy, FinetunePolicy),
    PolicyFile("content.yaml", "content", load_built, empty_policy),
)
BY_NAME = {spec.name: spec for spec in POLICY_FILES}


def version_of(sha256: str) -> str:
    return sha256[:12] if sha256 != ABSENT else ABSENT


# Files a policy reads beside its own (content.yaml's term files): an edit of one is a new
# version of the policy too.
COMPANIONS: dict[str, Callable[[Path], list[Path]]] = {"content.yaml": term_files}


def file_digest(path: Path) -> str:
    """The file's SHA-256 (with its companions', if it has any), or ABSENT."""
    try:
        digest = hashlib.sha256(path.read_bytes())
    except FileNotFoundError:
        return ABSENT
    companions = COMPANIONS.get(path.name)
    for companion in companions(path) if companions else ():
        digest.update(companion.name.encode() + b"\0")
        try:
            digest.update(hashlib.sha256(companion.read_bytes()).digest())
        except OSError:
            digest.update(b"absent")
    return digest.hexdigest()


def load_policy(spec: PolicyFile, directory: Path) -> tuple[Any, str]:
    """(the policy, the SHA-256 of exactly the text it was loaded from); PolicyError.

    The file is hashed before and after loading: a write in between is loaded again.
    """
    path = directory / spec.name
    for _ in range(5):
        before = file_digest(path)
        if before == ABSENT and spec.default is not None:
            return spec.default(), ABSENT
        policy = spec.load(path)
        if file_digest(path) == before:
            return policy, before
    raise PolicyError(f"{path}: changes faster than it can be read")


@dataclass
class Failure:
    sha256: str
    error: str


Hook = Callable[[str, Any, Any], None]  # (file name, policy before, policy now in force)


class PolicyWatch:
    """Keeps ``target``'s policies (attributes named by POLICY_FILES) in step with the files.

    ``versions`` maps each file to the SHA-256 its policy in ``target`` was loaded from
    (``build_services`` records them). ``kind`` is the process kind: api, portal, worker,
    beat. Call ``start()`` for a background thread, or ``poll()`` from a loop.
    """

    def __init__(
        self,
        target: Any,
        directory: Path | Callable[[], Path],
        versions: dict[str, str],
        db: Database,
        kind: str,
        *,
        interval_s: float = INTERVAL_S,
        report_s: float = REPORT_S,
    ) -> None:
        self.target = target
        self._directory = directory
        self.versions = dict(versions)
        self.failures: dict[str, Failure] = {}
        self.db = db
        self.kind = kind
        self.interval_s = interval_s
        self.report_s = report_s
        self.hooks: list[Hook] = []
        self.host = socket.gethostname()
        self.started_at = utcnow()
        self._lock = threading.RLock()
        self._last_check = 0.0
        self._last_report = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def directory(self) -> Path:
        """Where the files are now: a callable is asked each time (the first save in the
        portal moves the policies from the shipped directory into the home)."""
        return self._directory() if callable(self._directory) else self._directory

    @property
    def process(self) -> str:
        return f"{self.kind}:{self.host}:{os.getpid()}"

    def on_change(self, hook: Hook) -> None:
        """``hook(name, before, after)`` runs after a new version of ``name`` is in force."""
        self.hooks.append(hook)

    # ------------------------------------------------------------------ checking

    def poll(self) -> list[str]:
        """``check()`` if the interval has passed since the last one; what changed."""
        if time.monotonic() - self._last_check < self.interval_s:
            return []
        return self.check()

    def check(self) -> list[str]:
        """Load every file whose version differs from the one in force; report; the names
        of the policies that changed."""
        with self._lock:
            self._last_check = time.monotonic()
            changed, undone = [], False
            directory = self.directory
            for spec in POLICY_FILES:
                sha = file_digest(directory / spec.name)
                if sha == self.versions.get(spec.name):
                    # an invalid edit was undone
                    undone = self.failures.pop(spec.name, None) is not None or undone
                    continue
                failure = self.failures.get(spec.name)
                if failure is not None and failure.sha256 == sha:
                    continue  # known bad: audited once
                try:
                    policy, sha = load_policy(spec, directory)
                except PolicyError as exc:
                    self._refuse(spec.name, sha, str(exc.message))
                    continue
                if sha != self.versions.get(spec.name):
                    self.adopt(spec.name, policy, sha)
                    changed.append(spec.name)
            if changed or undone or time.monotonic() - self._last_report >= self.report_s:
                self.report()
            return changed

    def adopt(
        self, name: str, policy: Any, sha256: str, *, actor: str = "system", run_hooks: bool = True
    ) -> None:
        """Put ``policy`` (loaded from a file whose SHA-256 is ``sha256``) in force here.

        A caller that does the hooks' work itself (the portal's save) passes
        ``run_hooks=False``."""
        with self._lock:
            previous = self.versions.get(name)
            attribute = BY_NAME[name].attribute
            before = getattr(self.target, attribute, None)
            setattr(self.target, attribute, policy)
            self.versions[name] = sha256
            self.failures.pop(name, None)
            log.info("%s %s now in force in %s", name, version_of(sha256), self.process)
            self._audit(
                AuditAction.POLICY_IN_FORCE,
                name,
                sha256,
                actor=actor,
                previous=version_of(previous) if previous else None,
            )
            for hook in self.hooks if run_hooks else ():
                try:
                    hook(name, before, policy)
                except Exception:  # a hook's failure must not undo the policy in force
                    log.exception("policy hook for %s failed", name)
            self.report()

    def _refuse(self, name: str, sha256: str, error: str) -> None:
        self.failures[name] = Failure(sha256, error)
        log.error(
            "%s not applied in %s, %s stays in force: %s",
            name,
            self.process,
            version_of(self.versions.get(name, ABSENT)),
            error,
        )
        self._audit(AuditAction.POLICY_INVALID, name, sha256, outcome="failure", error=error)
        self.report()

    def _audit(self, action: AuditAction, name: str, sha256: str, **fields: Any) -> None:
        actor = fields.pop("actor", "system")
        outcome = fields.pop("outcome", "success")
        try:
            with self.db.session() as session:
                record(
                    session,
                    action,
                    outcome=outcome,
                    actor=actor,
                    target=name,
                    version=version_of(sha256),
                    sha256=sha256,
                    process_kind=self.kind,
                    process=self.process,
                    **fields,
                )
        except Exception:  # the policy is in force either way; the next report says so
            log.exception("could not audit %s of %s", action.value, name)

    # ------------------------------------------------------------------ reporting

    def report(self) -> None:
        """Write this process's row: the versions in force and the files refused."""
        self._last_report = time.monotonic()
        try:
            with self.db.session() as session:
                row = session.get(PolicyInForce, self.process) or PolicyInForce(
                    process=self.process,
                    kind=self.kind,
                    host=self.host,
                    pid=os.getpid(),
                    started_at=self.started_at,
                )
                row.versions = dict(self.versions)
                row.errors = {
                    name: {"sha256": f.sha256, "error": f.error}
                    for name, f in self.failures.items()
                }
                row.seen_at = utcnow()
                session.add(row)
        except Exception:
            log.warning("could not report the policies in force of %s", self.process, exc_info=True)

    def forget(self) -> None:
        """Remove this process's row (a clean exit)."""
        with contextlib.suppress(Exception), self.db.session() as session:
            session.execute(delete(PolicyInForce).where(PolicyInForce.process == self.process))

    # ------------------------------------------------------------------ the thread

    def start(self) -> PolicyWatch:
        """Check in a daemon thread of this process (again in a forked child)."""
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return self
        self._pid = os.getpid()
        self._stop.clear()
        self.started_at = utcnow()
        self._thread = threading.Thread(target=self._run, name="policy-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.forget()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):  # the first check reports
            try:
                self.check()
            except Exception:  # keep watching whatever one check met
                log.exception("policy check failed in %s", self.process)


# ---------------------------------------------------------------------- reading the rows


@dataclass(frozen=True)
class ProcessPolicies:
    process: str
    kind: str
    host: str
    pid: int
    versions: dict[str, str]
    errors: dict[str, dict[str, str]]
    seen_s: float  # seconds since its last report


def live_processes(db: Database, *, live_s: float = LIVE_S) -> list[ProcessPolicies]:
    """Every process that reported within ``live_s``, by kind then process."""
    since = utcnow() - timedelta(seconds=live_s)
    now = utcnow()
    with db.session() as session:
        rows = session.scalars(
            select(PolicyInForce)
            .where(PolicyInForce.seen_at >= since)
            .order_by(PolicyInForce.kind, PolicyInForce.process)
        ).all()
        return [
            ProcessPolicies(
                row.process,
                row.kind,
                row.host,
                row.pid,
                dict(row.versions or {}),
                dict(row.errors or {}),
                (now - row.seen_at).total_seconds(),
            )
            for row in rows
        ]


def pending(
    db: Database, directory: Path, name: str, kinds: tuple[str, ...] = PROCESS_KINDS
) -> list[ProcessPolicies]:
    """The live processes of ``kinds`` that do not yet have the file's version in force."""
    sha = file_digest(directory / name)
    return [p for p in live_processes(db) if p.kind in kinds and p.versions.get(name) != sha]


__all__ = [
    "ABSENT",
    "BY_NAME",
    "POLICY_FILES",
    "PolicyWatch",
    "ProcessPolicies",
    "live_processes",
    "load_policy",
    "pending",
    "version_of",
]
