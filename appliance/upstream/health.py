"""Active health checks of every upstream, stored for routing, readiness and the portal."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from appliance.db import Database
from appliance.models import Upstream, utcnow
from appliance.upstream.client import probe


def refresh_upstream_health(db: Database, timeout_s: float = 2.0) -> dict[str, bool]:
    """Probe every upstream once; returns {url: healthy}."""
    with db.session() as session:
        urls = {u.id: u.url for u in session.scalars(select(Upstream))}
    with httpx.Client() as http:
        reasons = {uid: probe(http, url, timeout_s) for uid, url in urls.items()}
    now = utcnow()
    with db.session() as session:
        for upstream in session.scalars(select(Upstream).where(Upstream.id.in_(reasons))):
            reason = reasons[upstream.id]
            upstream.healthy = reason is None
            upstream.last_error = reason
            upstream.last_checked_at = now
    return {urls[uid]: reason is None for uid, reason in reasons.items()}
