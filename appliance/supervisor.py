"""`appliance serve`: run the embedded default's processes together and stop them together.

Children are started in their own process groups; the first child to exit, SIGTERM or
Ctrl-C stops all of them (SIGTERM, then SIGKILL after a grace period). Production runs
each of these as its own systemd unit instead (see ansible/).

A child whose spec says ``restart`` (the Celery worker) is restarted instead, its whole
process group, when it exits or when its ``liveness`` (seconds since its last sign of
life, the worker's heartbeat) passes ``stale_after_s``; a child is given as long again
after each start before its liveness counts. Each restart is logged and reported to
``on_restart`` (``appliance serve`` audits it). More than ``MAX_RESTARTS`` restarts of one
child within ``RESTART_WINDOW_S`` stop everything, as an exit of any other child does.

Nothing outlives the supervisor, however it ends:

- ``handle_signals`` (called before the first child starts) turns SIGINT and SIGTERM into
  a stop at any time, start-up included, instead of the default death that would leave
  the children running.
- On Linux each child is started with ``PR_SET_PDEATHSIG`` = SIGTERM: the kernel signals
  it when the supervisor dies, SIGKILL included (the children are in their own sessions,
  so no terminal or group signal reaches them). gunicorn's and Celery's masters then stop
  their own workers.
- A guard process, started before the first child, is told each child's process group
  over a pipe only the supervisor holds. When the pipe closes without a clean stop (the
  supervisor was killed, or crashed), the guard does what ``stop`` would have done:
  SIGTERM to every group (grandchildren included), SIGKILL after the grace period.

The death signal is sent when the thread that started the child ends: start children from
a thread that lives as long as the run (``appliance serve`` uses its main thread).

A child may be given an instance token: a random value the supervisor draws as it starts
the child and passes in the environment variable ``ProcessSpec.instance_token_env``. The
built-in engine reads it from ``ENGINE_INSTANCE_TOKEN`` and returns it in the
``X-Engine-Instance`` header of every response, so readiness can tell the engine this run
started from another process answering on the same port.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)
GRACE_S = 10.0
MAX_RESTARTS = 5  # of one child within RESTART_WINDOW_S; one more stops everything
RESTART_WINDOW_S = 600.0
LIVENESS_EVERY_S = 2.0  # how often the liveness of the children that have one is read
GUARD_NAME = "supervisor-guard"  # its log: supervisor-guard.log
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The guard (run with `python -I -c`): reads child process groups, one a line, from stdin;
# "started" once all are started, "stopped" after a clean stop. Exits when every group it
# was told of is gone after "started", or at "stopped"; at end of input without "stopped"
# the supervisor has died: it stops every group still there, as Supervisor.stop would.
_GUARD = r"""
import os, select, signal, sys, time

if os.fork():  # the supervisor waits for this one; the guard is its child, nobody's to wait
    os._exit(0)
grace, supervisor = float(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)


def alive(group):
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def signal_all(groups, sig):
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass


groups, started, pending = set(), False, b""
while True:
    if select.select([0], [], [], 1.0)[0]:
        data = os.read(0, 4096)
        if not data:
            break
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            if line == b"stopped":
                sys.exit(0)
            if line == b"started":
                started = True
            elif line.strip():
                groups.add(int(line))
    groups = {group for group in groups if alive(group)}
    if started and not groups:
        sys.exit(0)
groups = {group for group in groups if alive(group)}
if not groups:
    sys.exit(0)
print(f"supervisor {supervisor} is gone; stopping process groups {sorted(groups)}", flush=True)
signal_all(groups, signal.SIGTERM)
deadline = time.monotonic() + grace
while groups and time.monotonic() < deadline:
    time.sleep(0.1)
    groups = {group for group in groups if alive(group)}
if groups:
    print(f"killing process groups {sorted(groups)}", flush=True)
    signal_all(groups, signal.SIGKILL)
"""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    instance_token_env: str | None = None  # pass a fresh instance token in this variable
    restart: bool = False  # restart it when it exits (or is stale) instead of stopping all
    # With restart: seconds since its last sign of life (math.inf: none yet); may raise
    # when it cannot tell (then it is not judged this time).
    liveness: Callable[[], float] | None = None
    stale_after_s: float = 60.0


class Supervisor:
    def __init__(
        self,
        specs: list[ProcessSpec],
        log_dir: Path,
        env: dict[str, str],
        on_restart: Callable[[str, str], None] | None = None,  # (name, why), after it
    ) -> None:
        self.specs = specs
        self.log_dir = log_dir
        self.env = env
        self.on_restart = on_restart
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.tokens: dict[str, str] = {}  # child name -> the instance token it was given
        self.started_at: dict[str, float] = {}  # child name -> time.monotonic() of its start
        self.restarts: dict[str, list[float]] = {}  # child name -> when it was restarted
        self._next_liveness = 0.0
        self._stopping = False
        self._previous_handlers: dict[int, Any] = {}
        self._guard_pipe: int | None = None  # the write end; the guard reads the other

    @property
    def stopping(self) -> bool:
        """Whether a signal (or a child's exit, in ``run_until_stopped``) asked for a stop."""
        return self._stopping

    def handle_signals(self) -> None:
        """From now on SIGINT and SIGTERM ask for a stop (``stopping``) instead of killing
        this process; ``restore_signals`` puts the previous handlers back. Main thread only."""
        if self._previous_handlers:
            return
        for sig in _SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous_handlers.clear()

    def start(self) -> None:
        """Start the guard, then every child (none once a stop has been asked for)."""
        self._start_guard()
        for spec in self.specs:
            if self._stopping:
                break
            self._start_child(spec)
        self._tell_guard("started")

    def _start_child(self, spec: ProcessSpec) -> None:
        env = dict(self.env)
        if spec.instance_token_env:
            self.tokens[spec.name] = env[spec.instance_token_env] = secrets.token_urlsafe(24)
        log_file = self.log_path(spec.name).open("ab")
        try:
            child = subprocess.Popen(
                spec.argv,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_death_signal_preexec(),  # only prctl and getppid: safe after fork
            )
        finally:
            log_file.close()
        self.children[spec.name] = child
        self.started_at[spec.name] = time.monotonic()
        self._tell_guard(str(child.pid))  # its session and group have its pid

    def exited(self) -> tuple[str, int] | None:
        """The first child that has exited and its exit code, or None while all run."""
        for name, child in self.children.items():
            code = child.poll()
            if code is not None:
                return name, code
        return None

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def run_until_stopped(self) -> int:
        """Block until a signal or a child exits (one that is not restarted); then stop
        everything. Returns an exit code."""
        self.handle_signals()
        exit_code = 0
        try:
            while not self._stopping:
                if not self._watch():
                    exit_code = 1
                    self._stopping = True
                    break
                time.sleep(0.2)
        finally:
            self.stop()
            self.restore_signals()
        return exit_code

    def _watch(self) -> bool:
        """One look at every child: restart what may be restarted; False to stop everything."""
        specs = {spec.name: spec for spec in self.specs}
        for name, child in list(self.children.items()):
            code = child.poll()
            if code is not None and not self._restarted(specs[name], f"exited with code {code}"):
                return False
        if time.monotonic() < self._next_liveness:
            return True
        self._next_liveness = time.monotonic() + LIVENESS_EVERY_S
        for name in list(self.children):
            spec = specs[name]
            silence = self._silence(spec)
            if self._stopping or silence is None or silence <= spec.stale_after_s:
                continue
            why = f"gave no sign of life for {silence:.0f} s (stale after {spec.stale_after_s:g} s)"
            if not self._restarted(spec, why):
                return False
        return True

    def _silence(self, spec: ProcessSpec) -> float | None:
        """Seconds since the child's last sign of life, its start included; None: not judged
        (no liveness, still in its start-up grace, or the liveness could not tell)."""
        if spec.liveness is None or not spec.restart:
            return None
        since_start = time.monotonic() - self.started_at[spec.name]
        if since_start <= spec.stale_after_s:
            return None
        try:
            silence = spec.liveness()
        except Exception as exc:
            log.warning("cannot tell whether %s is alive: %s", spec.name, exc)
            return None
        return min(silence, since_start)

    def _restarted(self, spec: ProcessSpec, why: str) -> bool:
        """Restart ``spec``'s child, which ``why``; False where it may not be restarted."""
        now = time.monotonic()
        recent = [t for t in self.restarts.get(spec.name, []) if now - t < RESTART_WINDOW_S]
        if not spec.restart:
            log.error("%s %s; stopping everything", spec.name, why)
            return False
        if len(recent) >= MAX_RESTARTS:
            log.error(
                "%s %s, after %d restarts in %.0f s; stopping everything",
                spec.name,
                why,
                len(recent),
                RESTART_WINDOW_S,
            )
            return False
        log.error("%s %s; restarting it", spec.name, why)
        _stop_group(spec.name, self.children[spec.name], GRACE_S)
        self.restarts[spec.name] = [*recent, now]
        if self._stopping:
            return True
        self._start_child(spec)
        if self.on_restart is not None:
            try:
                self.on_restart(spec.name, why)
            except Exception:
                log.exception("could not report the restart of %s", spec.name)
        return True

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def stop(self) -> None:
        for child in self.children.values():
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", name, GRACE_S)
                _signal_group(child, signal.SIGKILL)
                child.wait()
        self._stop_guard()

    # ------------------------------------------------------------------ the guard

    def _start_guard(self) -> None:
        if self._guard_pipe is not None or os.name != "posix":
            return
        read_end, write_end = os.pipe()  # neither end is inherited by the children
        try:
            with self.log_path(GUARD_NAME).open("ab") as log_file:
                launcher = subprocess.run(
                    [sys.executable, "-I", "-c", _GUARD, str(GRACE_S), str(os.getpid())],
                    stdin=read_end,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a terminal's signals are the supervisor's
                    check=False,
                    timeout=30,
                )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        if launcher.returncode != 0:
            log.warning(
                "no guard (see %s); the death signal alone remains", self.log_path(GUARD_NAME)
            )
            os.close(write_end)
            return
        self._guard_pipe = write_end

    def _tell_guard(self, line: str) -> None:
        if self._guard_pipe is not None:
            with contextlib.suppress(OSError):  # a guard that has exited needs nothing
                os.write(self._guard_pipe, f"{line}\n".encode())

    def _stop_guard(self) -> None:
        """A clean stop: the guard exits, and a later ``start`` gets a new one."""
        self._tell_guard("stopped")
        if self._guard_pipe is not None:
            os.close(self._guard_pipe)
            self._guard_pipe = None


def _death_signal_preexec() -> Callable[[], None] | None:
    """What a child runs between fork and exec, on Linux: ask for SIGTERM when this process
    dies, and exit if it already has (it died before the request was in place)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _stop_group(name: str, child: subprocess.Popen[bytes], grace_s: float) -> None:
    """Stop ``child``'s whole process group (what its leader started too, even after the
    leader died): SIGTERM, and SIGCONT for a stopped one; SIGKILL after ``grace_s``."""
    _signal_group(child, signal.SIGTERM)
    _signal_group(child, signal.SIGCONT)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (child.poll() is None or _group_alive(child.pid)):
        time.sleep(0.1)
    if child.poll() is None or _group_alive(child.pid):
        log.warning("%s did not stop in %.0fs; killing it", name, grace_s)
        _signal_group(child, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)  # a group member that is not ours is reaped by its parent
