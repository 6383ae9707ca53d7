"""The supervisor behind `appliance serve`: one child dying or a signal stops them all."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from appliance.supervisor import ProcessSpec, Supervisor, _group_alive
from tests import timing

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_dying_child_stops_every_other_child(tmp_path: Path) -> None:
    crasher = [sys.executable, "-c", "import sys, time; time.sleep(0.5); sys.exit(3)"]
    supervisor = Supervisor(
        [ProcessSpec("a", SLEEPER), ProcessSpec("b", SLEEPER), ProcessSpec("crash", crasher)],
        tmp_path,
        dict(os.environ),
    )
    supervisor.start()
    pids = [child.pid for child in supervisor.children.values()]
    started = time.monotonic()
    assert supervisor.run_until_stopped() == 1
    assert time.monotonic() - started < timing.scaled(15)
    assert all(child.poll() is not None for child in supervisor.children.values())
    assert not any(alive(pid) for pid in pids)


def test_sigterm_stops_all_children_with_status_zero(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [ProcessSpec("a", SLEEPER), ProcessSpec("b", SLEEPER)], tmp_path, dict(os.environ)
    )
    supervisor.start()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert supervisor.run_until_stopped() == 0
    assert all(child.returncode is not None for child in supervisor.children.values())
    assert (tmp_path / "a.log").exists()


def test_a_child_ignoring_sigterm_is_killed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("appliance.supervisor.GRACE_S", 1.0)
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    ]
    supervisor = Supervisor([ProcessSpec("stubborn", stubborn)], tmp_path, dict(os.environ))
    supervisor.start()
    time.sleep(timing.scaled(0.5))  # let it install its handler
    supervisor.stop()
    assert supervisor.children["stubborn"].returncode == -signal.SIGKILL


# ------------------------------------------------------------------ restarts (the watchdog)


def _run_in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    """run_until_stopped in a thread (its signal handlers are the main thread's: none here)."""
    code: list[int] = []
    supervisor.handle_signals = lambda: None  # type: ignore[method-assign]
    supervisor.restore_signals = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=lambda: code.append(supervisor.run_until_stopped()))
    thread.start()
    return thread, code


def _wait_until(check, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = timing.deadline(timeout_s)
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert check()


def _stop(supervisor: Supervisor, thread: threading.Thread, code: list[int]) -> int:
    supervisor._on_signal(signal.SIGTERM, None)
    thread.join(timeout=timing.scaled(30))
    assert not thread.is_alive() and code
    return code[0]


def test_a_restartable_child_that_exits_is_restarted_and_reported(tmp_path: Path) -> None:
    # The worker's shape: a leader with a child of its own in its group (beat).
    parent = "import subprocess, sys, time; subprocess.Popen(SLEEP); time.sleep(0.5); sys.exit(3)"
    flaky = [sys.executable, "-c", parent.replace("SLEEP", repr(SLEEPER))]
    reported: list[tuple[str, str]] = []
    supervisor = Supervisor(
        [ProcessSpec("a", SLEEPER), ProcessSpec("worker", flaky, restart=True)],
        tmp_path,
        dict(os.environ),
        on_restart=lambda name, why: reported.append((name, why)),
    )
    supervisor.start()
    first = supervisor.children["worker"].pid
    other = supervisor.children["a"].pid
    thread, code = _run_in_thread(supervisor)
    try:
        _wait_until(lambda: reported, 15)
        assert reported[0] == ("worker", "exited with code 3")
        assert supervisor.children["worker"].pid != first
        assert not _group_alive(first)  # the leader's own child went with it
        assert alive(other)  # nothing else was touched
    finally:
        assert _stop(supervisor, thread, code) == 0
    assert not any(alive(child.pid) for child in supervisor.children.values())


def test_a_stale_child_is_restarted_after_its_grace_and_a_fresh_one_is_not(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("appliance.supervisor.LIVENESS_EVERY_S", 0.1)
    silence = {"worker": 0.0, "calm": 0.0}
    reported: list[tuple[str, str]] = []
    asked: list[str] = []

    def liveness(name: str) -> float:
        asked.append(name)
        return silence[name]

    specs = [
        ProcessSpec(
            name, SLEEPER, restart=True, liveness=lambda n=name: liveness(n), stale_after_s=1.0
        )
        for name in silence
    ]
    supervisor = Supervisor(
        specs, tmp_path, dict(os.environ), on_restart=lambda *r: reported.append(r)
    )
    supervisor.start()
    first = supervisor.children["worker"].pid
    silence["worker"] = math.inf  # never a heartbeat: stale once its start is 1 s old
    thread, code = _run_in_thread(supervisor)
    try:
        time.sleep(0.5)
        assert not asked  # within the start-up grace nobody is judged
        _wait_until(lambda: reported, 15)
        name, why = reported[0]
        assert name == "worker" and why.startswith("gave no sign of life for 1 s"), why
        assert supervisor.children["worker"].pid != first and not alive(first)
        assert "calm" in asked and all(name == "worker" for name, _ in reported)
    finally:
        assert _stop(supervisor, thread, code) == 0


def test_a_stopped_child_is_killed_and_restarted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("appliance.supervisor.LIVENESS_EVERY_S", 0.1)
    monkeypatch.setattr("appliance.supervisor.GRACE_S", 2.0)
    supervisor = Supervisor(
        [ProcessSpec("worker", SLEEPER, restart=True, liveness=lambda: 5.0, stale_after_s=1.0)],
        tmp_path,
        dict(os.environ),
    )
    supervisor.start()
    first = supervisor.children["worker"]
    os.kill(first.pid, signal.SIGSTOP)
    thread, code = _run_in_thread(supervisor)
    try:
        _wait_until(lambda: supervisor.children["worker"] is not first, 15)
        assert first.returncode == -signal.SIGTERM  # SIGCONT let it take the SIGTERM
    finally:
        assert _stop(supervisor, thread, code) == 0


def test_a_liveness_that_cannot_tell_restarts_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("appliance.supervisor.LIVENESS_EVERY_S", 0.1)
    asked: list[int] = []

    def broken() -> float:
        asked.append(1)
        raise OSError("database is locked")

    supervisor = Supervisor(
        [ProcessSpec("worker", SLEEPER, restart=True, liveness=broken, stale_after_s=0.2)],
        tmp_path,
        dict(os.environ),
    )
    supervisor.start()
    first = supervisor.children["worker"].pid
    thread, code = _run_in_thread(supervisor)
    try:
        _wait_until(lambda: len(asked) >= 5, 15)
        assert supervisor.children["worker"].pid == first
    finally:
        assert _stop(supervisor, thread, code) == 0


def test_too_many_restarts_stop_everything(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("appliance.supervisor.MAX_RESTARTS", 2)
    crasher = [sys.executable, "-c", "import sys; sys.exit(4)"]
    supervisor = Supervisor(
        [ProcessSpec("a", SLEEPER), ProcessSpec("worker", crasher, restart=True)],
        tmp_path,
        dict(os.environ),
    )
    supervisor.start()
    other = supervisor.children["a"].pid
    started = time.monotonic()
    assert supervisor.run_until_stopped() == 1
    assert time.monotonic() - started < timing.scaled(15)
    assert len(supervisor.restarts["worker"]) == 2
    assert not alive(other)
