"""The embedded default's process set: what `appliance serve` starts, and how it reports.

Before anything starts, every port the run needs (API, portal, metrics, one engine per
built-in model) is checked: one taken refuses the run with one line naming the port and
the setting that moves it, and nothing is started. Readiness then counts only this run's
processes: each engine must answer with the instance token its supervisor gave it (another
server answering on its port is not it), and a child that exits meanwhile is reported at
once with its log.

SIGTERM or Ctrl-C stops every child at any time, start-up included (the handlers are in
place before the first child starts), and no child outlives the supervisor even when it is
killed with SIGKILL (see ``appliance.supervisor``).

The Celery worker (with its beat) is the one child that is restarted rather than
stopping the run: when it exits, and when its heartbeats (``appliance.heartbeats``) are
older than ``worker_stale_after_s`` (after as long again from its start). Each restart is
logged and audited (``system.service.restart``).
"""

from __future__ import annotations

import errno
import functools
import hmac
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gunicorn
import httpx

from appliance import heartbeats
from appliance.audit.events import AuditAction, record
from appliance.config import Settings, load_settings
from appliance.db import Database
from appliance.engine.server import INSTANCE_ENV, INSTANCE_HEADER
from appliance.errors import ApplianceError, SetupError
from appliance.services import Services, build_services
from appliance.supervisor import ProcessSpec, Supervisor
from appliance.upstream.registry import assign_builtin_ports
from appliance.vault.engine_key import EngineKeys

READY_TIMEOUT_S = 120.0
# gunicorn 27 opens a control socket in ~/.gunicorn by default: shared by every
# gunicorn of the user and outside APPLIANCE_HOME, so the embedded default turns it off.
_NO_CONTROL_SOCKET = ["--no-control-socket"] if gunicorn.version_info >= (27,) else []


def process_specs(
    settings: Settings,
    engines: list[tuple[str, str, int]],
    worker_liveness: Callable[[], float] | None = None,
) -> list[ProcessSpec]:
    """The children: one engine per built-in model, the two apps, the worker with beat
    (restarted when it exits, or when ``worker_liveness`` passes worker_stale_after_s)."""
    py = sys.executable
    host = settings.bind_host
    specs = [
        ProcessSpec(
            engine_process(name),
            [
                py,
                "-m",
                "appliance",
                "engine",
                "serve",
                "--model",
                path,
                "--port",
                str(port),
                "--served-model-name",
                name,
                *engine_key_args(settings),
                # Fine-tuned adapters are hot-loaded into the running engine (issue 9).
                "--allow-runtime-lora-updating",
                "--max-loras",
                "4",
                "--max-lora-rank",
                "64",
            ],
            instance_token_env=INSTANCE_ENV,
        )
        for name, path, port in engines
    ]
    gunicorn = [
        py,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--threads",
        "16",
        "--graceful-timeout",
        "5",
        "--timeout",
        "0",
        *_NO_CONTROL_SOCKET,
    ]
    # The API runs the production gunicorn config: gevent workers, metrics on metrics_port.
    specs.append(
        ProcessSpec(
            "api",
            [
                py,
                "-m",
                "gunicorn",
                "-c",
                "python:appliance.api.gunicorn_conf",
                "--workers",
                "2",
                "--graceful-timeout",
                "5",
                "appliance.wsgi:api",
            ],
        )
    )
    specs.append(
        ProcessSpec(
            "portal",
            [
                *gunicorn,
                "--workers",
                "1",
                "--bind",
                f"{host}:{settings.portal_port}",
                "appliance.wsgi:portal",
            ],
        )
    )
    specs.append(
        ProcessSpec(
            "worker",
            [
                py,
                "-m",
                "celery",
                "-A",
                "appliance.worker",
                "worker",
                "--beat",
                "--queues",
                "celery,train",  # the embedded default trains the tiny model on its CPU
                "--loglevel",
                "INFO",
                # Its pool: threads, from the app (appliance.tasks.polling_pool).
                "--schedule",
                str(settings.run_dir / "celerybeat-schedule"),
            ],
            restart=True,
            liveness=worker_liveness,
            stale_after_s=settings.worker_stale_after_s,
        )
    )
    return specs


def audit_restart(db: Database) -> Callable[[str, str], None]:
    """The supervisor's ``on_restart``: one ``system.service.restart`` event a restart."""

    def audit(name: str, why: str) -> None:
        with db.session() as session:
            record(
                session, AuditAction.SERVICE_RESTART, actor="supervisor", target=name, reason=why
            )

    return audit


def engine_process(model: str) -> str:
    return f"engine-{model}"


def engine_key_args(settings: Settings) -> list[str]:
    """Where an engine reads its key: the home's file (a path, never the key, on the
    command line), or nothing when the setting engine_key is the key (the engine inherits
    it in its environment)."""
    return (
        [] if settings.engine_key is not None else ["--api-key-file", str(settings.engine_key_path)]
    )


def child_env(settings: Settings, overrides: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env["APPLIANCE_HOME"] = str(settings.home)
    env.update({f"APPLIANCE_{k.upper()}": str(v) for k, v in overrides.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ------------------------------------------------------------------ ports

ENGINE_HOST = "127.0.0.1"  # where `appliance engine serve` listens (its --host default)
_OPTIONS = {"api_port": "--api-port", "portal_port": "--portal-port"}  # of `appliance serve`


@dataclass(frozen=True)
class PortUse:
    """One port this run listens on, who listens there and the setting that moves it."""

    host: str
    port: int
    what: str  # "API", "engine of model 'tiny'"
    setting: str  # "api_port"
    option: str | None = None  # the command-line option that set it, if one did

    @property
    def how(self) -> str:
        return self.option or f"setting {self.setting} / APPLIANCE_{self.setting.upper()}"

    def describe(self) -> str:
        return f"port {self.port} ({self.what}, {self.how})"


def port_uses(
    settings: Settings, engines: list[tuple[str, str, int]], overrides: dict[str, Any] | None = None
) -> list[PortUse]:
    """Every port `appliance serve` listens on, in the order it reports them."""
    given = overrides or {}
    host = settings.bind_host

    def own(setting: str, what: str, port: int) -> PortUse:
        option = _OPTIONS.get(setting) if setting in given else None
        return PortUse(host, port, what, setting, f"option {option}" if option else None)

    uses = [
        own("api_port", "API", settings.api_port),
        own("portal_port", "portal", settings.portal_port),
        own("metrics_port", "API metrics", settings.metrics_port),
    ]
    uses += [
        PortUse(ENGINE_HOST, port, f"engine of model {name!r}", "engine_base_port")
        for name, _path, port in engines
    ]
    return uses


def check_ports(uses: list[PortUse]) -> None:
    """Raise SetupError, one line, for the first port that is shared, taken or not bindable."""
    seen: dict[int, PortUse] = {}
    for use in uses:
        if use.port > 65535:
            raise SetupError(f"{use.describe()} is above 65535; nothing was started")
        if use.port in seen:
            other = seen[use.port]
            raise SetupError(
                f"{use.describe()} is also the port of the {other.what} ({other.how}); "
                "nothing was started"
            )
        seen[use.port] = use
    for use in uses:
        reason = bind_failure(use.host, use.port)
        if reason is not None:
            raise SetupError(f"{use.describe()} {reason}; nothing was started")


def bind_failure(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` now, or None when it could.

    Binds as gunicorn does (SO_REUSEADDR: a port left in TIME_WAIT is free) and lets go.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is already in use"
            return f"cannot be listened on at {host} ({exc.strerror or exc})"
    return None


# ------------------------------------------------------------------ readiness


def is_our_engine(port: int, token: str) -> bool:
    """Whether the engine on ``port`` is up and is the one given ``token``."""
    try:
        response = httpx.get(f"http://{ENGINE_HOST}:{port}/health", timeout=2)
    except httpx.HTTPError:
        return False
    answered = response.headers.get(INSTANCE_HEADER, "")
    return response.status_code == 200 and hmac.compare_digest(answered, token)


def answers_200(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Check:
    what: str  # for the report: "engine of model 'tiny' on port 8100"
    ready: Callable[[], bool]


def readiness_checks(
    supervisor: Supervisor, settings: Settings, engines: list[tuple[str, str, int]]
) -> list[Check]:
    """This run's engines (each with its own token), then the API's /readyz."""
    checks = [
        Check(
            f"engine of model {name!r} on port {port}",
            functools.partial(is_our_engine, port, supervisor.tokens[engine_process(name)]),
        )
        for name, _path, port in engines
    ]
    api = f"http://{settings.bind_host}:{settings.api_port}"
    checks.append(Check(f"API on port {settings.api_port}", lambda: answers_200(f"{api}/readyz")))
    return checks


def wait_until_ready(
    supervisor: Supervisor, checks: list[Check], timeout_s: float, poll_s: float = 0.5
) -> str | None:
    """None once every check passes, in order; else why not (a child exited, or time ran out)."""
    deadline = time.monotonic() + timeout_s
    pending = list(checks)
    while pending:
        if supervisor.stopping:
            return "stopped by a signal"
        exited = supervisor.exited()
        if exited is not None:
            name, code = exited
            log_path = supervisor.log_path(name)
            last = last_line(log_path)
            return f"{name} exited with code {code}{': ' + last if last else ''} (see {log_path})"
        while pending and pending[0].ready():
            pending.pop(0)
        if not pending:
            break
        if time.monotonic() >= deadline:
            return f"{pending[0].what} not ready after {timeout_s:.0f} s, see {supervisor.log_dir}"
        time.sleep(poll_s)
    return None


def last_line(path: Path, tail_bytes: int = 4096) -> str:
    """The last non-empty line of a log file (at most 200 characters), or ''."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip()[:200] for line in reversed(lines) if line.strip()), "")


def builtin_engines(services: Services, *, assign: bool) -> list[tuple[str, str, int]]:
    """(model, path, port) of each built-in model; with ``assign``, its upstream is set there."""
    with services.db.session() as session:
        engines = [
            (m.name, m.path or "", port)
            for m, port in assign_builtin_ports(session, services.settings.engine_base_port)
        ]
        if not assign:
            session.rollback()
    return engines


def preflight() -> None:
    """`make run`, before it prints or starts anything: exit 1 with one line if a port is taken.

    The same check as `appliance serve`'s, under the same settings (``APPLIANCE_*``).
    """
    try:
        services = build_services(load_settings())
        try:
            check_ports(port_uses(services.settings, builtin_engines(services, assign=False)))
        finally:
            services.db.dispose()
    except ApplianceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)


def run_embedded(services: Services, overrides: dict[str, Any], echo: Callable[[str], None]) -> int:
    settings = services.settings
    engines = builtin_engines(services, assign=True)
    services.db.dispose()  # the children open their own connections
    check_ports(port_uses(settings, engines, overrides))
    EngineKeys.from_settings(settings)  # made if missing (a home older than engine keys), 0600
    # This process reads the worker's heartbeats (and audits its restarts) through
    # services.db, which connects again on first use.
    supervisor = Supervisor(
        process_specs(settings, engines, functools.partial(heartbeats.silence_s, services.db)),
        settings.log_dir,
        child_env(settings, overrides),
        on_restart=audit_restart(services.db),
    )
    # Before the first child: SIGTERM or Ctrl-C while it waits for readiness stops them all.
    supervisor.handle_signals()
    try:
        try:
            supervisor.start()
            problem = wait_until_ready(
                supervisor, readiness_checks(supervisor, settings, engines), READY_TIMEOUT_S
            )
        except BaseException:
            supervisor.stop()
            raise
        if not supervisor.stopping:
            api = f"http://{settings.bind_host}:{settings.api_port}"
            portal = f"http://{settings.bind_host}:{settings.portal_port}"
            echo(f"API:    {api}/v1   ({'ready' if problem is None else 'NOT ready: ' + problem})")
            echo(f"Portal: {portal}/")
            echo(f"Logs:   {settings.log_dir}")
            echo("Press Ctrl-C to stop.")
        return supervisor.run_until_stopped()
    finally:
        supervisor.restore_signals()
