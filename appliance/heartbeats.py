"""Heartbeats of the background services, shown on the portal's home page."""

from __future__ import annotations

from typing import Any

from appliance.db import Database
from appliance.models import ServiceHeartbeat, utcnow


def beat(db: Database, name: str, **info: Any) -> None:
    with db.session() as session:
        row = session.get(ServiceHeartbeat, name) or ServiceHeartbeat(name=name)
        row.last_seen = utcnow()
        row.info = info
        session.add(row)
