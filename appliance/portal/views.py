"""The portal's pages. Views stay thin: gather, then render."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, jsonify, render_template

from appliance.auth.rbac import Permission
from appliance.portal import health
from appliance.portal.app import db_session, portal_services
from appliance.portal.auth import current_user, public, require

bp = Blueprint("main", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_filter(format_time, "time")
    app.add_template_filter(format_age, "age")


@bp.get("/healthz")
@public
def healthz() -> Response:
    """Liveness for load balancers: answers without touching the database."""
    return jsonify(status="ok")


@bp.get("/")
@require(Permission.PORTAL_DASHBOARD_READ)
def home() -> str:
    services = portal_services()
    report = health.gather(services.db, db_session(), services.settings.worker_stale_after_s)
    return render_template(
        "home.html",
        user=current_user(),
        report=report,
        stale_after_s=services.settings.worker_stale_after_s,
    )


def format_time(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
