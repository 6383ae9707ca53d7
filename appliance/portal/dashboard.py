"""The dashboard: health of every upstream replica and background worker, whether rate limits
are shared through Redis, and API traffic.

Traffic is scoped like /keys (``keys._sees_all``): a viewer with ``admin:keys:read`` sees
every call; anyone else only the calls made with their own keys.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

from appliance import heartbeats
from appliance.auth.access import require
from appliance.auth.rbac import Permission
from appliance.portal import health, stats
from appliance.portal.auth import has_permission, signed_in_user
from appliance.portal.context import db_session, portal_services

bp = Blueprint("dashboard", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
@require(Permission.PORTAL_DASHBOARD_READ)
def home() -> str:
    services = portal_services()
    session = db_session()
    user = signed_in_user()
    sees_all = has_permission(user, Permission.ADMIN_KEYS_READ)  # the rule of /keys
    report = health.gather(services.db, session, services.settings.worker_stale_after_s)
    # The line /readyz says of the worker: "ok", or "degraded: worker stale for N s".
    worker_status = (
        heartbeats.describe(
            {s.name: s.age_s for s in report.services}, services.settings.worker_stale_after_s
        )
        if report.services
        else None
    )
    traffic = (
        stats.traffic(session, owner_id=None if sees_all else user.id)
        if report.database.ok
        else None
    )
    return render_template(
        "home.html",
        user=user,
        sees_all=sees_all,
        report=report,
        stale_after_s=services.settings.worker_stale_after_s,
        worker_status=worker_status,
        rate_limits=health.rate_limit_sharing(services.settings.redis_url),
        traffic=traffic,
        requests_chart=stats.bar_chart(traffic.per_minute) if traffic else None,
        tokens_chart=stats.bar_chart(traffic.tokens_per_day) if traffic else None,
    )
