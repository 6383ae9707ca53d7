"""`appliance serve` leaves nothing behind: not when stopped during start-up, not when killed.

Every process of a run (the engine, API, portal and worker, their gunicorn and Celery
children) carries a marker variable the test puts in the supervisor's environment, so the
test finds them all in /proc, those started after the supervisor died included. The fast
tests check the supervisor's two safeguards on stand-in children, each alone and together;
the slow ones run the real `appliance serve`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.serve import bind_failure
from tests import timing
from tests.conftest import free_port
from tests.test_cli import last_line, run

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)"
)

MARKER = "ORPHAN_TEST_RUN_ID"  # not APPLIANCE_*: the settings refuse unknown ones


def run_pids(run_id: str) -> set[int]:
    """Every live process (not a zombie) whose environment has this run's marker."""
    needle = f"{MARKER}={run_id}".encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if needle in environ.split(b"\0"):  # a zombie's environ reads empty
            pids.add(int(entry.name))
    return pids


def describe(pids: set[int]) -> list[str]:
    out = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            out.append(f"{pid}: {cmd[:150]}")
    return out


def wait_for_no_processes(run_id: str, timeout_s: float) -> tuple[set[int], float]:
    """(the processes of the run still alive at the deadline, seconds waited)."""
    started = time.monotonic()
    deadline = timing.deadline(timeout_s)
    while (left := run_pids(run_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left, time.monotonic() - started


def kill_everything(run_id: str) -> None:
    """Clean-up whatever the code under test left: SIGKILL every process of the run."""
    for _ in range(50):
        pids = run_pids(run_id)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


class Serve:
    """`appliance serve` as a subprocess, its output collected line by line."""

    def __init__(self, home: Path, ports: dict[str, int], run_id: str, user_home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        env.pop("XDG_RUNTIME_DIR", None)
        env.update(
            HOME=str(user_home),
            APPLIANCE_HOME=str(home),
            APPLIANCE_METRICS_PORT=str(ports["metrics"]),
            APPLIANCE_ENGINE_BASE_PORT=str(ports["engine"]),
            **{MARKER: run_id},
        )
        argv = [sys.executable, "-m", "appliance", "serve"]
        argv += ["--api-port", str(ports["api"]), "--portal-port", str(ports["portal"])]
        self.process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout_s: float) -> str:
        deadline = timing.deadline(timeout_s)
        while time.monotonic() < deadline:
            found = next((line for line in self.lines if text in line), None)
            if found is not None:
                return found
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} in {self.output()!r}")

    def children(self) -> set[int]:
        """The supervisor's direct children now (from /proc)."""
        pids = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                        pids.add(int(entry.name))
        return pids

    def output(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=timing.scaled(10))
        self._reader.join(timeout=timing.scaled(5))
        assert self.process.stdout is not None
        self.process.stdout.close()


# ------------------------------------------------------------------ the safeguards alone

# A supervisor with stand-in children, in a process of its own (the test kills it). argv:
# log dir, which safeguards it keeps. Children: one with a grandchild in its group (as
# gunicorn's and Celery's masters have), one that ignores SIGTERM, one plain sleeper.
DRIVER = """
import os, sys, time
from pathlib import Path
import appliance.supervisor as s

log_dir, keep = Path(sys.argv[1]), sys.argv[2]
s.GRACE_S = 1.0
if keep == "death signal":
    s.Supervisor._start_guard = lambda self: None
elif keep == "guard":
    s._death_signal_preexec = lambda: None
py = sys.executable
sleep = "import time; time.sleep(120)"
parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {sleep!r}]); "
stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
ready = "print('ready', flush=True); time.sleep(120)"
specs = [
    s.ProcessSpec("sleeper", [py, "-c", "import time; " + ready]),
    s.ProcessSpec("parent", [py, "-c", parent + ready]),
    s.ProcessSpec("stubborn", [py, "-c", stubborn + ready]),
]
if keep == "death signal":  # the kernel's signal reaches children only, and is SIGTERM
    specs = specs[:1]
supervisor = s.Supervisor(specs, log_dir, dict(os.environ))
supervisor.start()
print(len(specs), flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("keep", ["both", "death signal", "guard"])
def test_a_killed_supervisor_takes_every_child_and_grandchild_along(
    tmp_path: Path, run_id: str, keep: str
) -> None:
    env = {**os.environ, MARKER: run_id, "PYTHONPATH": str(Path(__file__).parents[1])}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path), keep],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdout is not None
        count = int(driver.stdout.readline())
        logs = [log for log in tmp_path.glob("*.log") if log.name != "supervisor-guard.log"]
        deadline = timing.deadline(15)
        while time.monotonic() < deadline and not (
            len(logs) == count and all("ready" in log.read_text() for log in logs)
        ):
            time.sleep(0.05)
            logs = [log for log in tmp_path.glob("*.log") if log.name != "supervisor-guard.log"]
        assert len(logs) == count and all("ready" in log.read_text() for log in logs)
        before = run_pids(run_id) - {driver.pid}
        driver.kill()
        driver.wait(timeout=timing.scaled(5))
        left, waited = wait_for_no_processes(run_id, 10)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        assert driver.stdout is not None
        driver.stdout.close()
    assert not left, f"alive {waited:.1f} s after SIGKILL: {describe(left)}"
    expected = count + (count > 1) + (keep != "death signal")  # a grandchild, the guard
    assert len(before) == expected, describe(before)


# ------------------------------------------------------------------ `appliance serve`


@pytest.fixture()
def home(tmp_path: Path, tiny_model: Path) -> Path:
    home = tmp_path / "home"
    last_line(run(home, "init"))
    last_line(run(home, "model", "add", "tiny", "--path", str(tiny_model)))
    return home


@pytest.fixture()
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("api", "portal", "metrics", "engine")}


@pytest.fixture()
def run_id() -> Iterator[str]:
    run_id = uuid.uuid4().hex
    yield run_id
    kill_everything(run_id)  # only does something when the test has failed


def taken_ports(ports: dict[str, int]) -> dict[str, str]:
    return {
        name: reason
        for name, port in ports.items()
        if (reason := bind_failure("127.0.0.1", port)) is not None
    }


@pytest.mark.slow
def test_sigterm_while_waiting_for_readiness_stops_every_child(
    tmp_path: Path, home: Path, ports: dict[str, int], run_id: str
) -> None:
    (user_home := tmp_path / "user-home").mkdir()
    serve = Serve(home, ports, run_id, user_home)
    try:
        # Every child has started (engine, API, portal, worker), none is ready: the engine
        # takes seconds to load its model.
        deadline = timing.deadline(30)
        while len(serve.children()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        children = serve.children()
        assert len(children) >= 4, (children, serve.output())
        before = run_pids(run_id)
        assert children <= before
        serve.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = serve.process.wait(timeout=timing.scaled(30))
        exited = time.monotonic() - signalled
        left, waited = wait_for_no_processes(run_id, 30)
    finally:
        serve.close()
    assert "(ready)" not in serve.output(), "the signal came too late: the run was ready"
    assert not left, f"alive {waited:.1f} s after SIGTERM: {describe(left)}"
    print(f"{len(before)} processes; the supervisor exited {exited:.1f} s after SIGTERM")
    assert code == 0, serve.output()
    assert taken_ports(ports) == {}


@pytest.mark.slow
def test_sigkill_of_the_supervisor_kills_every_child_and_a_new_start_succeeds(
    tmp_path: Path, home: Path, ports: dict[str, int], run_id: str
) -> None:
    (user_home := tmp_path / "user-home").mkdir()
    first = Serve(home, ports, run_id, user_home)
    try:
        first.wait_for_line("(ready)", 120)
        before = run_pids(run_id)
        assert len(before) >= 4, describe(before)
        first.process.kill()
        first.process.wait(timeout=timing.scaled(10))
        left, waited = wait_for_no_processes(run_id, 40)
    finally:
        first.close()
    assert not left, f"alive {waited:.1f} s after SIGKILL: {describe(left)}"
    print(f"{len(before)} processes, all gone {waited:.1f} s after the SIGKILL")
    assert taken_ports(ports) == {}

    # The next start, on the same ports, is this run's and nobody else's.
    second_id = uuid.uuid4().hex
    second = Serve(home, ports, second_id, user_home)
    try:
        banner = second.wait_for_line("API:", 120)
        assert f"API:    http://127.0.0.1:{ports['api']}/v1   (ready)" in banner, second.output()
        second.process.send_signal(signal.SIGTERM)
        code = second.process.wait(timeout=timing.scaled(30))
        left, _ = wait_for_no_processes(second_id, 30)
    finally:
        second.close()
        kill_everything(second_id)
    assert code == 0, second.output()
    assert not left, describe(left)
    assert taken_ports(ports) == {}
