"""gunicorn configuration of the API app in production.

    gunicorn -c appliance/api/gunicorn_conf.py appliance.wsgi:api

Streams are long-lived, so the workers are gevent workers: one process per core, each holding
up to ``worker_connections`` requests as greenlets. The settings come from the appliance's
validated settings (``APPLIANCE_*`` and ``$APPLIANCE_HOME/appliance.yaml``); the worker count
from gunicorn's own ``WEB_CONCURRENCY``. The master serves the Prometheus metrics of all
workers on ``metrics_port`` (``/metrics``), from a private multiprocess directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import gunicorn
import gunicorn.util

from appliance.config import Settings, load_settings
from appliance.errors import ApplianceError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _multiproc_dir(settings: Settings) -> Path:
    """The directory prometheus_client's workers write to: the environment's, or a private one.

    Set in the environment here, at config load, so that every process (master and workers)
    sees it before importing prometheus_client.
    """
    given = os.environ.get(MULTIPROC_ENV)
    path = Path(given) if given else settings.run_dir / "prometheus"
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _clear(path: Path) -> None:
    """Create the directory (0700) and empty it: files of a previous run would be summed in."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


_settings = load_settings()
_metrics_dir = _multiproc_dir(_settings)

# ------------------------------------------------------------------ settings

# Where the API listens: APPLIANCE_BIND_HOST and APPLIANCE_API_PORT.
bind = [_hostport(_settings.bind_host, _settings.api_port)]
# Worker processes: WEB_CONCURRENCY, else one per core (each is a gevent loop, not a thread).
workers = int(os.environ.get("WEB_CONCURRENCY") or _cores())
# Greenlet workers: a waiting stream costs a greenlet, not a thread or a process.
worker_class = "gevent"
# Concurrent connections (streams included) per worker before it stops accepting.
worker_connections = 1000
# Heartbeat limit: a gevent worker beats from its own greenlet, so long streams never trip it;
# only a worker whose event loop is blocked this long (a bug) is killed and replaced.
timeout = 60
# On SIGTERM/SIGHUP, time in-flight requests and streams get to finish before they are cut.
graceful_timeout = 30
# Idle keep-alive wait between requests; above OpenAI SDK/httpx pools' 5 s so clients close first.
keepalive = 15
# Pending connections the kernel queues while every worker is busy.
backlog = 2048
# Build the app in each worker, after gevent has patched it, never in the master.
preload_app = False
# Workers are not recycled: routing state (circuit breakers, pools) lives in them.
max_requests = 0
# Heartbeat files in memory rather than on a possibly slow or full /tmp disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs
# Process title in ps/top.
proc_name = "appliance-api"
# Errors to stderr (the supervisor or journald keeps them), at the appliance's level.
errorlog = "-"
# gunicorn's log level follows APPLIANCE_LOG_LEVEL.
loglevel = _settings.log_level.lower()
# No access log: every API call already has an audit event, and a log line costs per request.
accesslog = None
if gunicorn.version_info >= (27,):
    # No control socket in ~/.gunicorn: shared by every gunicorn of the user, outside the home.
    control_socket_disable = True


# ------------------------------------------------------------------ errors

# gunicorn answers a request it cannot parse (431 for oversized or too many headers, 400
# for a bare CR or a broken chunk, 414, 501...) itself, with an HTML page from
# gunicorn.util.write_error, before the app sees it. It has no setting for that page, so
# each worker replaces the writer (post_worker_init) with one answering OpenAI-style JSON.

INTERNAL_MESSAGE = "The server had an error while processing your request."


def json_error(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP response for a request gunicorn refused: OpenAI-style JSON, then close."""
    error = ApplianceError(message or (INTERNAL_MESSAGE if status >= 500 else reason))
    error.status = status
    error.type = "invalid_request_error" if status < 500 else "internal_error"
    body = json.dumps(error.to_openai()).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's signature, with a JSON body instead of an HTML page."""
    gunicorn.util.write_nonblock(sock, json_error(status_int, reason, mesg))


# ------------------------------------------------------------------ hooks


def on_starting(server: Any) -> None:
    """Master, once, before anything is recorded: start from an empty metrics directory."""
    _clear(_metrics_dir)


def when_ready(server: Any) -> None:
    """Master, once listening: serve every worker's metrics on the internal port."""
    from appliance.api import metrics
    from appliance.audit.metrics import AuditLagCollector
    from appliance.db import Database

    metrics.set_workers(server.num_workers)
    host, port = _settings.bind_host, _settings.metrics_port
    audit = AuditLagCollector(Database(_settings))  # the audit's backlog, read per scrape
    server.appliance_metrics_server = metrics.serve_metrics(host, port, [audit])
    server.log.info("Metrics at http://%s/metrics", _hostport(host, port))


def post_worker_init(worker: Any) -> None:
    """Worker, once its app is loaded: the requests gunicorn refuses are answered in JSON."""
    gunicorn.util.write_error = write_json_error


def nworkers_changed(server: Any, new_value: int, old_value: int | None) -> None:
    """Master: TTIN/TTOU change the worker count; the gauge follows."""
    if old_value is None:  # the first count, set before on_starting: when_ready records it
        return
    from appliance.api import metrics

    metrics.set_workers(new_value)


def child_exit(server: Any, worker: Any) -> None:
    """Master, when a worker exits: its live gauges (streams, limiter mode) leave the sums."""
    from appliance.api import metrics

    metrics.worker_exited(worker.pid)


def on_exit(server: Any) -> None:
    """Master, at the end: stop the metrics server."""
    metrics_server = getattr(server, "appliance_metrics_server", None)
    if metrics_server is not None:
        metrics_server.shutdown()
        metrics_server.server_close()
