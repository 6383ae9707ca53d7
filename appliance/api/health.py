"""Liveness and readiness: the only public endpoints of the API app."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from appliance import heartbeats
from appliance.api import context as ctx
from appliance.auth.access import public
from appliance.upstream.registry import list_models

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
@public
def readyz() -> tuple[dict[str, Any], int]:
    """Ready when the database answers and every enabled model has a reachable upstream.

    The rate limiter and the worker's heartbeats are reported, not judged: the API serves
    without Redis and without the worker (``checks.worker``: ``ok`` or ``degraded: ...``)."""
    api = ctx.state()
    checks: dict[str, Any] = {}
    try:
        api.services.db.ping()
        checks["database"] = "ok"
        with api.services.db.session() as session:
            models = [
                (m.name, [(u.url, u.credential) for u in m.upstreams])
                for m in list_models(session)
                if m.enabled
            ]
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        models = []
    upstreams = {}
    for name, urls in models:
        reasons = [api.upstreams.probe(url, sealed) for url, sealed in urls]
        upstreams[name] = (
            "ok"
            if None in reasons
            else f"unreachable ({', '.join(map(str, reasons)) or 'no upstream'})"
        )
    checks["upstreams"] = upstreams
    # Serving without Redis (limits shared by this host's workers only) is allowed, but said
    # here: "backend" names where the limits are counted.
    checks["rate_limits"] = api.limiter.status()
    # The Celery worker and beat (sealing, shipping, health checks, fine-tunes): said here,
    # "degraded: worker stale for N s", but the API answers without them, so still ready.
    checks["worker"] = heartbeats.status(
        api.services.db, api.services.settings.worker_stale_after_s
    )
    ready = checks["database"] == "ok" and all(v == "ok" for v in upstreams.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
