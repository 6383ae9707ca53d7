"""The API's Prometheus metrics: the metric objects, one small function per thing recorded,
and the WSGI app that serves them on the internal metrics port. (Those that the limiter
and the upstream client record live in ``appliance.metrics``; they are served here too.)

Under gunicorn every worker records into memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``
(set by ``appliance/api/gunicorn_conf.py`` before anything imports prometheus_client) and the
master serves their sum; without that variable (tests, a single process) the default registry
is served as is. Label values must stay few: the Flask endpoint name rather than the path, a
registered model name rather than what the client asked for, a replica URL, a limit name.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.registry import Collector

# Recorded by the limiter and the upstream client too, so they live outside the API
# package; served here with the others.
from appliance.metrics import LIMITER_MODE as LIMITER_MODE
from appliance.metrics import LIMITER_MODES as LIMITER_MODES
from appliance.metrics import RATE_LIMIT_REJECTIONS as RATE_LIMIT_REJECTIONS
from appliance.metrics import UPSTREAM_ERRORS as UPSTREAM_ERRORS
from appliance.metrics import count_rejection as count_rejection
from appliance.metrics import count_upstream_error as count_upstream_error
from appliance.metrics import set_limiter_mode as set_limiter_mode

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"

# From half a millisecond (the gateway's own cost) to a minute (a long generation).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

REQUEST_LATENCY = Histogram(
    "appliance_api_request_duration_seconds",
    "Time from request received to response returned (stream opened, for streams).",
    ["endpoint", "status"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "appliance_api_time_to_first_token_seconds",
    "Time from request received to the first streamed token sent to the client.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
PROMPT_TOKENS = Counter(
    "appliance_api_prompt_tokens", "Prompt tokens (in) of completed calls.", ["model"]
)
COMPLETION_TOKENS = Counter(
    "appliance_api_completion_tokens", "Completion tokens (out) of completed calls.", ["model"]
)
PRIVACY_FINDINGS = Counter(
    "appliance_api_privacy_findings",
    "Personal data found per type: in prompts (with the policy's action) and in answers.",
    ["direction", "type", "action"],
)
CONTENT_FINDINGS = Counter(
    "appliance_api_content_findings",
    "Content-policy findings per category, direction (input, output) and action taken.",
    ["category", "direction", "action"],
)
AUDIT_EVENTS_LOST = Counter(
    "appliance_api_audit_events_lost",
    "Audit events the database refused after every retry (each is also logged).",
)
STREAMS_IN_FLIGHT = Gauge(
    "appliance_api_streams_in_flight",
    "Streaming responses open to clients right now.",
    multiprocess_mode="livesum",
)
# Set by the gunicorn master (one process), hence "mostrecent".
GUNICORN_WORKERS = Gauge(
    "appliance_api_gunicorn_workers",
    "Worker processes the gunicorn master keeps running.",
    multiprocess_mode="mostrecent",
)
GUNICORN_WORKER_EXITS = Counter(
    "appliance_api_gunicorn_worker_exits", "Worker processes that exited (any reason)."
)


def observe_request(endpoint: str, status: int | str, seconds: float) -> None:
    REQUEST_LATENCY.labels(endpoint, str(status)).observe(seconds)


def observe_ttft(model: str, seconds: float) -> None:
    TIME_TO_FIRST_TOKEN.labels(model).observe(seconds)


def count_tokens(model: str, prompt: int | None, completion: int | None) -> None:
    if prompt:
        PROMPT_TOKENS.labels(model).inc(prompt)
    if completion:
        COMPLETION_TOKENS.labels(model).inc(completion)


def count_privacy_findings(privacy: dict[str, Any]) -> None:
    """The counts an API call's audit event carries under ``privacy``."""
    for kind, per_action in (privacy.get("input") or {}).items():
        for action, count in per_action.items():
            PRIVACY_FINDINGS.labels("input", kind, action).inc(count)
    for kind, count in (privacy.get("output") or {}).items():
        PRIVACY_FINDINGS.labels("output", kind, "found").inc(count)


def observe_content(category: str, direction: str, action: str) -> None:
    CONTENT_FINDINGS.labels(category, direction, action).inc()


def count_audit_dropped(events: int) -> None:
    AUDIT_EVENTS_LOST.inc(events)


def stream_started() -> None:
    STREAMS_IN_FLIGHT.inc()


def stream_ended() -> None:
    STREAMS_IN_FLIGHT.dec()


def set_workers(count: int) -> None:
    GUNICORN_WORKERS.set(count)


def worker_exited(pid: int) -> None:
    """In the gunicorn master when a worker exits: count it and drop its live gauges."""
    GUNICORN_WORKER_EXITS.inc()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


# ------------------------------------------------------------------ exposition

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def metrics_app(collectors: Iterable[Collector] = ()) -> WsgiApp:
    """A WSGI app serving the metrics at ``/metrics`` (404 elsewhere).

    With ``PROMETHEUS_MULTIPROC_DIR`` set it aggregates every process's files on each scrape;
    otherwise it serves this process's default registry (with its process and GC metrics).
    ``collectors`` read their values at each scrape (the audit lag, from the database).
    """
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    for collector in collectors:
        registry.register(collector)
    inner = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not found: the metrics are at /metrics.\n"]
        return inner(environ, start_response)

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


def serve_metrics(host: str, port: int, collectors: Iterable[Collector] = ()) -> WSGIServer:
    """Serve :func:`metrics_app` on ``host:port`` from a daemon thread; ``shutdown()`` stops it."""
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    server = make_server(
        host.strip("[]"), port, metrics_app(collectors), server_class, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
