"""The portal's application factory and the plumbing every request shares.

``create_app`` builds one Flask app from validated settings (or ready-made services,
in tests). Each subsystem registers itself through its own ``init_app``:

- here: the request id, security headers and the request's database session;
- ``errors``: one renderer for every failure;
- ``auth``: sessions and the access check that runs before every view, then CSRF;
- ``login`` (local accounts, TOTP, logout) and ``sso`` (OpenID Connect): signing in;
- ``views`` and the page modules: the pages.

Creating the app opens no database connection, so gunicorn may import it before forking.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from flask import Flask, Response, current_app, g, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm import Session

from appliance.audit.events import RequestContext
from appliance.config import Settings, load_settings
from appliance.proxies import behind_proxies
from appliance.services import Services, build_services

SESSION_COOKIE_NAME = "appliance_portal"
EXTENSION_KEY = "appliance"
REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """Build the portal: ``services`` wins; else they are built from ``settings``."""
    if services is None:
        services = build_services(settings or load_settings())
    settings = services.settings

    app = Flask(__name__)
    app.extensions[EXTENSION_KEY] = services
    secret = settings.secret_key
    app.config.update(
        SECRET_KEY=secret.get_secret_value() if secret else services.derived_key("portal-session"),
        SESSION_COOKIE_NAME=SESSION_COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_idle_timeout_min),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        # Referrer-Policy: no-referrer means browsers send no Referer, so Flask-WTF's
        # HTTPS referrer check would reject every form; the session-bound token,
        # SameSite=Lax and the Sec-Fetch-Site check below protect instead.
        WTF_CSRF_SSL_STRICT=False,
        # CSRF is checked by auth's hook, right after the access check, on every
        # unsafe request: a refusal (login page, 403) never depends on the token.
        WTF_CSRF_CHECK_DEFAULT=False,
    )

    # Order matters: request id first (every response carries it), then the
    # cross-site check, then authentication, authorization and CSRF (auth.init_app).
    app.before_request(_assign_request_id)
    app.before_request(_refuse_cross_site_writes)
    CSRFProtect(app)
    app.after_request(_security_headers)
    app.teardown_appcontext(_close_db_session)

    from appliance.portal import (
        account,
        admin,
        audit_views,
        auth,
        dashboard,
        errors,
        finetune_views,
        keys,
        login,
        models_views,
        policies,
        sso,
        views,
    )

    errors.init_app(app)
    auth.init_app(app)
    views.init_app(app)
    for module in (login, sso, account, dashboard, keys, admin, policies, models_views):
        module.init_app(app)
    finetune_views.init_app(app)
    audit_views.init_app(app)
    behind_proxies(app, settings.proxy_hops)
    return app


# Accessors for views --------------------------------------------------------------


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


# Hooks -----------------------------------------------------------------------------


def _assign_request_id() -> None:
    request_id()


def _refuse_cross_site_writes() -> None:
    # Browsers send Sec-Fetch-Site on every request; a form posted from another site
    # is refused even before the token is looked at. Non-browser clients omit it.
    if request.method in UNSAFE_METHODS and request.headers.get("Sec-Fetch-Site") in {
        "cross-site",
        "same-site",
    }:
        raise CSRFError("The form was submitted from another site.")


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers[REQUEST_ID_HEADER] = request_id()
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    if portal_services().settings.session_cookie_secure:
        headers["Strict-Transport-Security"] = HSTS
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response


def _close_db_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()  # rolls back whatever was not committed
