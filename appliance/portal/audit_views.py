"""The audit trail in the portal: a filterable, paginated list of events (read-only).

Nobody can change or delete an event through the appliance: there is no such route and
no such permission. The audit dashboard (verification, export) builds on this page.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template, request
from sqlalchemy import select

from appliance.auth.rbac import Permission
from appliance.models import AuditEvent
from appliance.portal.app import db_session
from appliance.portal.auth import require
from appliance.portal.pages import paginate

bp = Blueprint("audit", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/audit")
@require(Permission.AUDIT_READ)
def index() -> str:
    action = request.args.get("action", "").strip()[:64]
    actor = request.args.get("actor", "").strip()[:128]
    query = select(AuditEvent).order_by(AuditEvent.seq.desc())
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(AuditEvent.actor == actor)
    return render_template(
        "audit.html", page=paginate(db_session(), query, size=50), action=action, actor=actor
    )
