"""Per-app state and per-request context of the portal (as ``appliance.api.context`` is the
API's): what every view module shares, kept apart from the factory in ``app``, which
imports the views."""

from __future__ import annotations

import re
import uuid

from flask import current_app, g, request
from sqlalchemy.orm import Session

from appliance.audit.events import RequestContext
from appliance.services import Services

EXTENSION_KEY = "appliance"
REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def portal_services() -> Services:
    """The services of the app handling the current request."""
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services


def db_session() -> Session:
    """The request's database session, opened on first use and closed at teardown.

    Views that change data call ``commit()`` themselves; anything uncommitted is
    rolled back when the request ends.
    """
    if "db_session" not in g:
        g.db_session = portal_services().db.sessionmaker()
    session: Session = g.db_session
    return session


def close_db_session(_exc: BaseException | None) -> None:
    """The app's teardown: close the request's session, if one was opened."""
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()  # rolls back whatever was not committed


def request_id() -> str:
    """The id of this request: a sane incoming ``X-Request-Id`` or a fresh uuid4 hex."""
    if "request_id" not in g:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    value: str = g.request_id
    return value


def request_context() -> RequestContext:
    """What audit events record about the current request."""
    return RequestContext(
        request_id=request_id(),
        source_ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
        http_method=request.method,
        url_path=request.path[:512],
    )
