"""The supervisor behind `appliance serve`: one child dying or a signal stops them all."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from appliance.supervisor import ProcessSpec, Supervisor
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
