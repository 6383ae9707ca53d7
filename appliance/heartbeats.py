"""Heartbeats of the background services: the portal's home page, /readyz and the watchdog
of `appliance serve` read them.

- ``beat``: written by beat itself, each time it sends the heartbeat task (every
  ``heartbeat_interval_s``).
- ``worker``: written by the worker when it runs that task, and, while one of its tasks
  runs longer than an interval (a fine-tune), every interval by ``PULSE``: a worker busy
  with a long task is alive; one that runs nothing (all it does comes from beat, the
  heartbeat task every interval included) is not.

A heartbeat older than ``worker_stale_after_s`` is stale: /readyz and the portal say
``degraded: worker stale for N s`` and `appliance serve` restarts the worker, with its
beat (``silence_s`` is what its watchdog reads).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from appliance.db import Database
from appliance.models import ServiceHeartbeat, utcnow

log = logging.getLogger(__name__)
WORKER = "worker"
BEAT = "beat"
SERVICES = (WORKER, BEAT)


def beat(db: Database, name: str, **info: Any) -> None:
    with db.session() as session:
        row = session.get(ServiceHeartbeat, name) or ServiceHeartbeat(name=name)
        row.last_seen = utcnow()
        row.info = info
        session.add(row)


def here(**info: Any) -> dict[str, Any]:
    """What a heartbeat says of the process writing it: host and pid, then ``info``."""
    return {"hostname": socket.gethostname(), "pid": os.getpid(), **info}


def ages(
    session: Session, names: tuple[str, ...] = SERVICES, *, now: datetime | None = None
) -> dict[str, float | None]:
    """Seconds since each named service's heartbeat; None for one never seen."""
    now = now or utcnow()
    rows = session.execute(
        select(ServiceHeartbeat.name, ServiceHeartbeat.last_seen).where(
            ServiceHeartbeat.name.in_(names)
        )
    )
    seen: dict[str, datetime] = {name: last_seen for name, last_seen in rows}
    return {name: (now - seen[name]).total_seconds() if name in seen else None for name in names}


def describe(found: dict[str, float | None], stale_after_s: float) -> str:
    """``ok``, or ``degraded: worker stale for 73 s`` (every stale or unseen service)."""
    problems = [
        f"{name} never seen" if age is None else f"{name} stale for {age:.0f} s"
        for name, age in found.items()
        if age is None or age > stale_after_s
    ]
    return "degraded: " + ", ".join(problems) if problems else "ok"


def status(db: Database, stale_after_s: float) -> str:
    """``describe`` of the worker and beat now; a database failure is said, not raised."""
    try:
        with db.session() as session:
            found = ages(session)
    except SQLAlchemyError as exc:
        return f"unknown: {type(exc).__name__}"
    return describe(found, stale_after_s)


def silence_s(db: Database, names: tuple[str, ...] = SERVICES) -> float:
    """Seconds since the oldest of these heartbeats (inf while one was never written): the
    watchdog's view of the worker with its beat. Raises SQLAlchemyError."""
    with db.session() as session:
        found = ages(session, names)
    return max(math.inf if age is None else age for age in found.values())


class Pulse:
    """The worker's heartbeat while its tasks run: from ``running`` until the last of them
    ends, a thread writes it every ``interval_s`` (named ``busy``). The thread ends with the
    last task; the next one starts another (so a fork never inherits a live one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, str] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def running(self, task: str, db: Callable[[], Database], interval_s: float) -> Iterator[None]:
        with self._lock:
            self._next += 1
            key = self._next
            self._running[key] = task
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._beat, args=(db, interval_s), name="heartbeat", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                del self._running[key]

    def busy(self) -> list[str]:
        with self._lock:
            return sorted(set(self._running.values()))

    def _beat(self, db: Callable[[], Database], interval_s: float) -> None:
        stop = threading.Event()
        while not stop.wait(interval_s):
            with self._lock:
                tasks = sorted(set(self._running.values()))
                if not tasks:
                    self._thread = None
                    return
            try:
                beat(db(), WORKER, **here(busy=tasks))
            except Exception:  # the next interval tries again; the task goes on
                log.warning("could not write the worker's heartbeat", exc_info=True)


PULSE = Pulse()  # one per process
