"""Prometheus metrics that more than one package records: the upstream client's failed
attempts and the rate limiter's refusals and mode.

They live here, not in ``appliance.api``, so that recording them (the limiter and the
upstream client also run in the portal and the Celery worker) never loads the API app.
The API serves them with the rest (``appliance.api.metrics``); the names keep their
``appliance_api_`` prefix, which dashboards and alerts already use.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LIMITER_MODES = ("redis", "local", "local-fallback")

UPSTREAM_ERRORS = Counter(
    "appliance_api_upstream_errors",
    "Failed attempts to reach or use an upstream replica.",
    ["replica"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "appliance_api_rate_limit_rejections", "Requests refused with 429, by limit.", ["limit"]
)
LIMITER_MODE = Gauge(
    "appliance_api_rate_limiter_mode",
    "Workers whose rate limiter is in each mode (redis, local, local-fallback).",
    ["mode"],
    multiprocess_mode="livesum",
)


def count_upstream_error(url: str) -> None:
    UPSTREAM_ERRORS.labels(url).inc()


def count_rejection(limit: str) -> None:
    RATE_LIMIT_REJECTIONS.labels(limit).inc()


def set_limiter_mode(mode: str) -> None:
    """1 for this process's current mode, 0 for the others (summed over live workers)."""
    for known in {*LIMITER_MODES, mode}:
        LIMITER_MODE.labels(known).set(1 if known == mode else 0)
