"""`appliance serve`: run the embedded default's processes together and stop them together.

Children are started in their own process groups; the first child to exit, SIGTERM or
Ctrl-C stops all of them (SIGTERM, then SIGKILL after a grace period). Production runs
each of these as its own systemd unit instead (see ansible/).

A child may be given an instance token: a random value the supervisor draws as it starts
the child and passes in the environment variable ``ProcessSpec.instance_token_env``. The
built-in engine reads it from ``ENGINE_INSTANCE_TOKEN`` and returns it in the
``X-Engine-Instance`` header of every response, so readiness can tell the engine this run
started from another process answering on the same port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)
GRACE_S = 10.0


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    instance_token_env: str | None = None  # pass a fresh instance token in this variable


class Supervisor:
    def __init__(self, specs: list[ProcessSpec], log_dir: Path, env: dict[str, str]) -> None:
        self.specs = specs
        self.log_dir = log_dir
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.tokens: dict[str, str] = {}  # child name -> the instance token it was given
        self._stopping = False

    def start(self) -> None:
        for spec in self.specs:
            env = dict(self.env)
            if spec.instance_token_env:
                self.tokens[spec.name] = env[spec.instance_token_env] = secrets.token_urlsafe(24)
            log_file = self.log_path(spec.name).open("ab")
            self.children[spec.name] = subprocess.Popen(
                spec.argv,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log_file.close()

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
        """Block until a signal or a child exits; then stop everything. Returns an exit code."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        exit_code = 0
        try:
            while not self._stopping:
                for name, child in self.children.items():
                    if child.poll() is not None:
                        log.error(
                            "%s exited with code %s; stopping everything", name, child.returncode
                        )
                        exit_code = 1
                        self._stopping = True
                        break
                time.sleep(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return exit_code

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


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)
