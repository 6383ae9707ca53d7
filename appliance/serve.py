"""The embedded default's process set: what `appliance serve` starts, and how it reports."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import gunicorn
import httpx

from appliance.config import Settings
from appliance.services import Services
from appliance.supervisor import ProcessSpec, Supervisor
from appliance.upstream.registry import assign_builtin_ports

READY_TIMEOUT_S = 120.0
# gunicorn 27 opens a control socket in ~/.gunicorn by default: shared by every
# gunicorn of the user and outside APPLIANCE_HOME, so the embedded default turns it off.
_NO_CONTROL_SOCKET = ["--no-control-socket"] if gunicorn.version_info >= (27,) else []


def process_specs(settings: Settings, engines: list[tuple[str, str, int]]) -> list[ProcessSpec]:
    """The children: one engine per built-in model, the two apps, the worker with beat."""
    py = sys.executable
    host = settings.bind_host
    specs = [
        ProcessSpec(
            f"engine-{name}",
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
                # Fine-tuned adapters are hot-loaded into the running engine (issue 9).
                "--allow-runtime-lora-updating",
                "--max-loras",
                "4",
                "--max-lora-rank",
                "64",
            ],
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
                "--concurrency",
                "1",
                "--schedule",
                str(settings.run_dir / "celerybeat-schedule"),
            ],
        )
    )
    return specs


def child_env(settings: Settings, overrides: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env["APPLIANCE_HOME"] = str(settings.home)
    env.update({f"APPLIANCE_{k.upper()}": str(v) for k, v in overrides.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def wait_for(url: str, timeout_s: float) -> bool:
    """Poll ``url`` until it answers 200 or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def run_embedded(services: Services, overrides: dict[str, Any], echo: Callable[[str], None]) -> int:
    settings = services.settings
    with services.db.session() as session:
        engines = [
            (m.name, m.path or "", port)
            for m, port in assign_builtin_ports(session, settings.engine_base_port)
        ]
    services.db.dispose()  # the children open their own connections
    supervisor = Supervisor(
        process_specs(settings, engines), settings.log_dir, child_env(settings, overrides)
    )
    supervisor.start()
    api = f"http://{settings.bind_host}:{settings.api_port}"
    portal = f"http://{settings.bind_host}:{settings.portal_port}"
    ready = wait_for(f"{api}/readyz", READY_TIMEOUT_S)
    echo(f"API:    {api}/v1   ({'ready' if ready else 'NOT ready: see ' + str(settings.log_dir)})")
    echo(f"Portal: {portal}/")
    echo(f"Logs:   {settings.log_dir}")
    echo("Press Ctrl-C to stop.")
    return supervisor.run_until_stopped()
