"""The dashboard: health of every upstream replica and background worker, and API traffic."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

from appliance.auth.access import require
from appliance.auth.rbac import Permission
from appliance.portal import health, stats
from appliance.portal.auth import signed_in_user
from appliance.portal.context import db_session, portal_services

bp = Blueprint("dashboard", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
@require(Permission.PORTAL_DASHBOARD_READ)
def home() -> str:
    services = portal_services()
    session = db_session()
    report = health.gather(services.db, session, services.settings.worker_stale_after_s)
    traffic = stats.traffic(session) if report.database.ok else None
    return render_template(
        "home.html",
        user=signed_in_user(),
        report=report,
        stale_after_s=services.settings.worker_stale_after_s,
        traffic=traffic,
        requests_chart=stats.bar_chart(traffic.per_minute) if traffic else None,
        tokens_chart=stats.bar_chart(traffic.tokens_per_day) if traffic else None,
    )
