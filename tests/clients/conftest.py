"""The API of `appliance serve` (the built-in engine on the tiny model), for client libraries.

One server for the whole session: started as a user would start it (`init`, `model add
tiny --path`, `key create`, then `appliance serve` on free ports, as tests/test_embedded.py
does), and stopped cleanly at the end, process group included, with no port left held.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import jsonschema
import pytest

from appliance.supervisor import _death_signal_preexec
from tests import timing
from tests.conftest import free_port
from tests.test_cli import last_line, run

# LiteLLM fetches its model price map from the internet on import unless told to use the
# copy it ships; this machine (and CI) has no network. Set before any test module imports it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# LangChain would try to reach LangSmith if tracing were switched on in the environment.
os.environ.pop("LANGCHAIN_TRACING_V2", None)
os.environ.pop("LANGSMITH_TRACING", None)

MODEL = "tiny"


class Api(NamedTuple):
    """Where the clients connect: the OpenAI-compatible API of `appliance serve`."""

    base_url: str  # ends with /v1
    api_key: str
    model: str


def _port_listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timing.scaled(1))
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we cannot signal still exists
        return True
    return True


def _log_tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Api]:
    """`appliance serve` with the tiny model registered as "tiny", and an API key for it."""
    root = tmp_path_factory.mktemp("clients")
    home = root / "home"
    last_line(run(home, "init"))
    last_line(run(home, "model", "add", MODEL, "--path", str(tiny_model)))
    key = last_line(run(home, "key", "create", "--user", "admin", "--name", "clients"))
    api_port, portal_port, engine_port, metrics_port = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    user_home = root / "user-home"
    user_home.mkdir()
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(
        HOME=str(user_home),
        APPLIANCE_HOME=str(home),
        APPLIANCE_ENGINE_BASE_PORT=str(engine_port),
        APPLIANCE_HEALTH_INTERVAL_S="1",
        APPLIANCE_METRICS_PORT=str(metrics_port),
    )
    log_path = root / "serve.log"
    log = log_path.open("w")
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance",
            "serve",
            "--api-port",
            str(api_port),
            "--portal-port",
            str(portal_port),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped as a whole at the end
        preexec_fn=_death_signal_preexec(),  # and SIGTERM if pytest itself is killed
    )
    pgid = serve.pid
    base_url = f"http://127.0.0.1:{api_port}/v1"
    try:
        deadline = timing.deadline(180)
        while True:
            if serve.poll() is not None:
                pytest.fail(
                    f"appliance serve exited with {serve.returncode} before its API answered:\n"
                    + _log_tail(log_path)
                )
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(
                    f"{base_url}/models",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=timing.scaled(5),
                )
                if answer.status_code == 200 and any(
                    m.get("id") == MODEL for m in answer.json().get("data", [])
                ):
                    break
            if time.monotonic() > deadline:
                pytest.fail("the API never listed the model:\n" + _log_tail(log_path))
            time.sleep(0.5)
        yield Api(base_url=base_url, api_key=key, model=MODEL)
    finally:
        _stop(serve, pgid)
        log.close()
    for port in (api_port, portal_port, engine_port, metrics_port):
        assert not _port_listens(port), f"port {port} still listens after serve stopped"


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, from /proc; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """Every process below ``root``, as pid -> start time (to tell a reused pid apart)."""
    parents: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
            started[int(entry.name)] = stat[1]
    found: dict[int, int] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = started[pid]
        todo.extend(parents.get(pid, []))
    return found


def _stop(serve: subprocess.Popen[Any], pgid: int) -> None:
    """SIGINT to the group (what Ctrl-C sends), then SIGTERM, then SIGKILL.

    The supervisor may give its children process groups of their own; those it started
    are noted first, so that none outlives it even if it has to be killed.
    """
    children = _descendants(serve.pid)
    for sig, wait_s in ((signal.SIGINT, 30), (signal.SIGTERM, 15)):
        if serve.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                serve.wait(timeout=timing.scaled(wait_s))
    if serve.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        serve.wait(timeout=timing.scaled(10))

    def left() -> list[int]:
        alive = [pid for pid, t in children.items() if (_proc_stat(pid) or (0, -1))[1] == t]
        return alive + ([pgid] if _group_alive(pgid) else [])

    deadline = timing.deadline(15)
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


# Shared schemas: small and bounded, so that a random model's constrained answer ends well
# within max_tokens (each string short or an enum, numbers bounded).
WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TIME_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"utc": {"type": "boolean"}},
    "required": ["utc"],
    "additionalProperties": False,
}
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # A pattern bounds the string; maxLength would too, but see
        # test_openai_sdk.py::test_json_schema_length_bounded_strings_are_valid_json.
        "name": {"type": "string", "pattern": "^[a-z]{1,8}$"},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {
            "type": "array",
            "items": {"type": "string", "enum": ["a", "b"]},
            "maxItems": 3,
        },
        "member": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "member"],
    "additionalProperties": False,
}
# Room for a constrained answer: the tiny model's tokens are short, and the JSON grammar
# lets it write whitespace between tokens, so a small object takes 60 to 130 tokens.
STRUCTURED_MAX_TOKENS = 256


def validate(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)
