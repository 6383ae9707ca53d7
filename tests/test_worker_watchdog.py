"""The embedded worker survives its task process dying, and `appliance serve` restarts a
worker that is gone or stale (hardening, item 1).

The slow tests run the real `appliance serve`, write audit events through the API the
whole time (``GET /v1/models``, one event a call) and break the worker while it seals:

- kill -9 of the process that runs the worker's tasks. With Celery's prefork pool (the old
  embedded default) that is the pool child, and its replacement waited for ever on the
  job pipe's lock the dead child held; with the pool of threads it is the worker itself,
  which the supervisor restarts;
- kill -9, or SIGSTOP, of the worker's main process: the supervisor restarts it when it
  exits, or when its heartbeat is older than ``worker_stale_after_s``.

Each time sealing resumes within 60 s and, once the run is stopped, `appliance audit
verify` finds every event in the chain exactly once, every API call's event included.
The fast tests check /readyz and the portal's line for a stale heartbeat.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from appliance import heartbeats
from appliance.api.app import create_app as create_api
from appliance.auth.users import create_user
from appliance.db import Database
from appliance.errors import ConfigError
from appliance.models import AuditEvent, ServiceHeartbeat, utcnow
from appliance.portal.app import create_app as create_portal
from appliance.services import Services
from appliance.tasks import HEARTBEAT_TASK, POLLING_POOL_THREADS, create_celery
from tests import timing
from tests.conftest import LiveServer, free_port, make_settings, unique
from tests.portal.helpers import PASSWORD, login
from tests.test_cli import last_line, run
from tests.test_serve_orphans import MARKER, describe, kill_everything, run_pids

STALE_AFTER_S = 20  # worker_stale_after_s of the served runs (twice the heartbeat interval)
RESUME_S = 60  # what the issue allows between the kill and sealing again


# ------------------------------------------------------------------ /readyz and the portal


def _heartbeats(services: Services, worker_age_s: float, beat_age_s: float) -> None:
    now = utcnow()
    with services.db.session() as session:
        for name, age in (("worker", worker_age_s), ("beat", beat_age_s)):
            seen = now - timedelta(seconds=age)
            session.merge(ServiceHeartbeat(name=name, last_seen=seen, info={}))


def test_readyz_says_degraded_while_the_worker_heartbeat_is_stale(
    sqlite_services: Services,
) -> None:
    server = LiveServer(create_api(services=sqlite_services))
    try:
        never = httpx.get(f"{server.url}/readyz", timeout=timing.scaled(10))
        assert never.status_code == 200
        assert never.json()["checks"]["worker"] == "degraded: worker never seen, beat never seen"

        _heartbeats(sqlite_services, worker_age_s=1, beat_age_s=2)
        fresh = httpx.get(f"{server.url}/readyz", timeout=timing.scaled(10))
        assert fresh.status_code == 200 and fresh.json()["checks"]["worker"] == "ok"

        stale_s = sqlite_services.settings.worker_stale_after_s + 73
        _heartbeats(sqlite_services, worker_age_s=stale_s, beat_age_s=2)
        stale = httpx.get(f"{server.url}/readyz", timeout=timing.scaled(10))
        # The API still answers without its worker: ready, and the body says what is wrong.
        assert stale.status_code == 200
        body = stale.json()
        assert body["status"] == "ready"
        said = body["checks"]["worker"]
        match = re.fullmatch(r"degraded: worker stale for (\d+) s", said)
        assert match, said
        assert stale_s <= int(match.group(1)) <= stale_s + timing.scaled(10)
    finally:
        server.stop()


def test_the_portal_home_says_the_same_of_a_stale_worker(sqlite_services: Services) -> None:
    with sqlite_services.db.session() as session:
        user, _ = create_user(session, unique("u"), ["auditor"], password=PASSWORD)
    client = create_portal(services=sqlite_services).test_client()
    login(client, user.username, PASSWORD)

    _heartbeats(sqlite_services, worker_age_s=1, beat_age_s=1)
    html = client.get("/").text
    line = re.search(r'<p data-testid="worker-status">(.*?)</p>', html, re.S)
    assert line and 'data-state="ok"' in line.group(1), html

    stale_s = sqlite_services.settings.worker_stale_after_s + 50
    _heartbeats(sqlite_services, worker_age_s=1, beat_age_s=stale_s)
    html = client.get("/").text
    line = re.search(r'<p data-testid="worker-status">(.*?)</p>', html, re.S)
    assert line, html
    said = re.search(r"degraded: beat stale for (\d+) s", line.group(1))
    assert said and stale_s <= int(said.group(1)) <= stale_s + timing.scaled(10), line.group(1)


# ------------------------------------------------------------------ the heartbeats


def test_the_embedded_broker_gets_a_pool_of_threads_and_redis_keeps_prefork(
    tmp_path: Path,
) -> None:
    embedded = create_celery(make_settings(tmp_path))
    assert embedded.conf.worker_pool == "threads"
    assert embedded.conf.worker_concurrency == POLLING_POOL_THREADS >= 2
    redis = create_celery(make_settings(tmp_path, broker_url="redis://127.0.0.1:6379/3"))
    assert redis.conf.worker_pool == "prefork"


def test_a_stale_threshold_under_two_heartbeats_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="worker_stale_after_s must be at least twice"):
        make_settings(tmp_path, heartbeat_interval_s=10, worker_stale_after_s=15)
    assert make_settings(tmp_path, heartbeat_interval_s=1, worker_stale_after_s=2)


def _heartbeat(services: Services, name: str) -> ServiceHeartbeat | None:
    with services.db.session() as session:
        return session.get(ServiceHeartbeat, name)


def test_beat_writes_its_heartbeat_as_it_sends_the_task_and_the_worker_as_it_runs_it(
    sqlite_services: Services,
) -> None:
    app = create_celery(sqlite_services.settings)
    task = app.tasks[HEARTBEAT_TASK]
    task.apply_async()  # sent by someone else: not beat's heartbeat
    assert _heartbeat(sqlite_services, "beat") is None
    task.apply_async(headers={"celery_beat_task": True})  # what beat sends (the home's broker)
    sent = _heartbeat(sqlite_services, "beat")
    assert sent is not None and sent.info["pid"] == os.getpid()
    assert _heartbeat(sqlite_services, "worker") is None  # nothing has run it yet
    task.apply().get(timeout=timing.scaled(10))  # what the worker does
    ran = _heartbeat(sqlite_services, "worker")
    assert ran is not None and ran.info["pid"] == os.getpid() and "busy" not in ran.info
    app.appliance_sender_db.dispose()
    worker_services = app.appliance_services  # the worker's own, built by the task
    if worker_services.watch is not None:
        worker_services.watch.stop()
    worker_services.db.dispose()


def test_a_long_task_keeps_the_worker_heartbeat_fresh(sqlite_services: Services) -> None:
    pulse = heartbeats.Pulse()
    with pulse.running("appliance.finetune.run", lambda: sqlite_services.db, 0.2):
        assert pulse.busy() == ["appliance.finetune.run"]
        deadline = timing.deadline(10)
        while _heartbeat(sqlite_services, "worker") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first = _heartbeat(sqlite_services, "worker")
        assert first is not None and first.info["busy"] == ["appliance.finetune.run"]
        time.sleep(0.6)
        later = _heartbeat(sqlite_services, "worker")
        assert later is not None and later.last_seen > first.last_seen
    assert pulse.busy() == []
    time.sleep(0.5)  # the thread ends with the last task, and writes nothing more
    done = _heartbeat(sqlite_services, "worker")
    time.sleep(0.5)
    assert _heartbeat(sqlite_services, "worker").last_seen == done.last_seen  # type: ignore[union-attr]


def test_the_watchdog_reads_the_older_of_the_two_heartbeats(sqlite_services: Services) -> None:
    assert heartbeats.silence_s(sqlite_services.db) == float("inf")
    _heartbeats(sqlite_services, worker_age_s=5, beat_age_s=90)
    assert 90 <= heartbeats.silence_s(sqlite_services.db) < 90 + timing.scaled(10)


# ------------------------------------------------------------------ `appliance serve`


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def _open_paths(pid: int) -> set[str]:
    paths = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                paths.add(os.readlink(fd))
    return paths


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@dataclass
class Served:
    """One `appliance serve` in a temporary home, and a client writing audit events."""

    home: Path
    process: subprocess.Popen[str]
    api: str
    key: str
    db: Database
    lines: list[str] = field(default_factory=list)
    answered: int = 0  # API calls answered 200: each has its event
    _stop_load: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._read, self._load):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def _load(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.api, headers=headers, timeout=timing.scaled(10)) as client:
            while not self._stop_load.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/v1/models").status_code == 200:
                        self.answered += 1
                self._stop_load.wait(0.1)

    def stop_load(self) -> None:
        self._stop_load.set()
        self._threads[1].join(timeout=timing.scaled(15))

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout_s: float) -> None:
        deadline = timing.deadline(timeout_s)
        while time.monotonic() < deadline and not any(text in line for line in self.lines):
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        assert any(text in line for line in self.lines), self.output()

    def worker(self) -> int:
        """The supervisor's child that runs `celery worker`."""
        for pid in _children(self.process.pid):
            with contextlib.suppress(OSError):
                if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        raise AssertionError(f"no worker among {describe(set(_children(self.process.pid)))}")

    def task_process(self) -> int:
        """Where the worker runs its tasks: its prefork pool child (a child that never talks
        to the broker, unlike beat), or the worker itself when it has none (threads)."""
        worker = self.worker()
        broker = str(self.home / "broker.db")
        pool = [pid for pid in _children(worker) if broker not in _open_paths(pid)]
        assert len(pool) <= 1, describe(set(pool))
        return pool[0] if pool else worker

    def sealed_and_unsealed(self) -> tuple[int, int, int]:
        """(highest event seq, highest sealed event seq, unsealed events)."""
        with self.db.session() as session:
            last = session.scalar(select(func.max(AuditEvent.seq))) or 0
            sealed = (
                session.scalar(
                    select(func.max(AuditEvent.seq)).where(AuditEvent.chain_pos.is_not(None))
                )
                or 0
            )
            unsealed = session.scalar(select(func.count()).where(AuditEvent.chain_pos.is_(None)))
        return last, sealed, int(unsealed or 0)

    def heartbeat_info(self) -> dict[str, object]:
        with self.db.session() as session:
            row = session.get(ServiceHeartbeat, "worker")
            return dict(row.info or {}) if row else {}


def _wait(check: Callable[[], bool], timeout_s: float, what: str, served: Served) -> float:
    """Seconds until ``check()`` is true, at most ``timeout_s`` (not scaled: it is checked)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            log = (served.home / "logs" / "worker.log").read_text(errors="replace")[-3000:]
            raise AssertionError(
                f"{what}: not within {timeout_s:.0f} s; serve said {served.output()!r}; "
                f"worker.log ends {log}"
            )
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.fixture()
def served(tmp_path: Path, tiny_model: Path) -> Iterator[Served]:
    run_id = uuid.uuid4().hex
    home = tmp_path / "home"
    last_line(run(home, "init"))
    last_line(run(home, "model", "add", "tiny", "--path", str(tiny_model)))
    key = last_line(run(home, "key", "create", "--user", "admin", "--name", "watchdog"))
    (user_home := tmp_path / "user-home").mkdir()
    api_port, portal_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(
        HOME=str(user_home),
        APPLIANCE_HOME=str(home),
        APPLIANCE_METRICS_PORT=str(free_port()),
        APPLIANCE_ENGINE_BASE_PORT=str(free_port()),
        APPLIANCE_WORKER_STALE_AFTER_S=str(STALE_AFTER_S),
        **{MARKER: run_id},
    )
    argv = [sys.executable, "-m", "appliance", "serve"]
    argv += ["--api-port", str(api_port), "--portal-port", str(portal_port)]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    db = Database(make_settings(home))
    serve = Served(home, process, f"http://127.0.0.1:{api_port}", key, db)
    serve.start()
    try:
        serve.wait_for_line("(ready)", 120)
        yield serve
    finally:
        serve.stop_load()
        for pid in run_pids(run_id):  # a stopped process would hold the stop up
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timing.scaled(40))
        kill_everything(run_id)
        process.wait(timeout=timing.scaled(10))
        serve._threads[0].join(timeout=timing.scaled(5))
        assert process.stdout is not None
        process.stdout.close()
        db.dispose()


def _break_and_recover(served: Served, victim: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``victim`` while events are being sealed; sealing must resume
    within RESUME_S; then stop the run and verify the chain holds every event once."""
    _wait(lambda: served.sealed_and_unsealed()[1] > 0, 60, "a first seal", served)
    # The heartbeat names the process that ran the task (the old heartbeat named none).
    assert served.heartbeat_info().get("pid", victim) == victim
    os.kill(victim, sig)
    broken = time.monotonic()
    time.sleep(1)
    after, _, _ = served.sealed_and_unsealed()  # an event written after the kill
    _wait(
        lambda: served.sealed_and_unsealed()[1] >= after,
        RESUME_S - (time.monotonic() - broken),
        f"sealing after {sig.name} of pid {victim}",
        served,
    )
    print(f"sealing resumed {time.monotonic() - broken:.1f} s after {sig.name} of {victim}")
    served.stop_load()
    _wait(lambda: served.sealed_and_unsealed()[2] == 0, 60, "every event sealed", served)
    assert served.process.poll() is None, served.output()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=timing.scaled(40)) == 0, served.output()
    last_line(run(served.home, "audit", "seal"))  # what the stop itself wrote, if anything

    with served.db.session() as session:
        events = session.scalar(select(func.count()).select_from(AuditEvent))
        positions = session.scalar(select(func.count(func.distinct(AuditEvent.chain_pos))))
        top = session.scalar(select(func.max(AuditEvent.chain_pos)))
        listed = session.scalar(select(func.count()).where(AuditEvent.action == "api.models.list"))
    assert events == positions == top, (events, positions, top)
    assert listed == served.answered  # every call answered has its one event
    verified = last_line(run(served.home, "audit", "verify"))
    assert verified.startswith(f"intact: {events} events (positions 1..{events}),"), verified
    assert verified.endswith("; 0 not sealed yet"), verified


@pytest.mark.slow
def test_a_killed_task_process_does_not_stop_sealing(served: Served) -> None:
    _break_and_recover(served, served.task_process(), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "stopped"])
def test_the_supervisor_restarts_a_dead_or_stale_worker(
    served: Served, sig: signal.Signals
) -> None:
    worker = served.worker()
    _break_and_recover(served, worker, sig)
    why = "exited with code -9" if sig == signal.SIGKILL else "gave no sign of life"
    assert f"worker {why}" in served.output() and "restarting it" in served.output()
    assert _state(worker) == "gone"
    with served.db.session() as session:
        restarts = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "system.service.restart"))
        )
    assert [(e.actor, e.target) for e in restarts] == [("supervisor", "worker")]
    assert why in restarts[0].details["reason"]
