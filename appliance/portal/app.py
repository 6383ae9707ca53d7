"""The portal's application factory and the plumbing every request shares.

``create_app`` builds one Flask app from validated settings (or ready-made services,
in tests). Each subsystem registers itself through its own ``init_app``:

- here: the request id, security headers and the request's database session (the
  accessors views share, ``portal_services``, ``db_session`` and the request id, are in
  ``context``);
- ``errors``: one renderer for every failure;
- ``auth``: sessions and the access check that runs before every view, then CSRF;
- ``login`` (local accounts, TOTP, logout) and ``sso`` (OpenID Connect): signing in;
- ``views`` and the page modules: the pages.

Creating the app opens no database connection (the policy watch's thread opens its first
one after ``policy_check_interval_s``), so gunicorn may import it before forking.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from flask import Flask, Response, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.routing import IntegerConverter, Map

from appliance.auth import access
from appliance.config import Settings, load_settings
from appliance.portal import (
    account,
    admin,
    audit_views,
    auth,
    content,
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
from appliance.portal.context import (
    EXTENSION_KEY,
    REQUEST_ID_HEADER,
    UNSAFE_METHODS,
    close_db_session,
    portal_services,
    request_id,
)
from appliance.proxies import behind_proxies
from appliance.services import Services, build_services

SESSION_COOKIE_NAME = "appliance_portal"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
# The largest id a database integer column holds (PostgreSQL's INTEGER, SQLite's is wider).
MAX_ID = 2**31 - 1


class BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` in every portal route: a number no row can have does not match (404).

    Werkzeug's converter takes any number of digits; past the database's integers the
    query itself fails (PostgreSQL: integer out of range; SQLite: overflow), a 500.
    """

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """Build the portal: ``services`` wins; else they are built from ``settings`` (and
    this process keeps its policies in step with the files: ``policywatch``)."""
    if services is None:
        services = build_services(settings or load_settings())
        watch = services.watch_policies("portal")
        watch.on_change(functools.partial(policies.policy_changed_on_disk, services))
    settings = services.settings

    app = Flask(__name__)
    # Before any route is added: the rules bind their converters when they are added.
    app.url_map.converters["int"] = BoundedIntegerConverter
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
    app.teardown_appcontext(close_db_session)

    errors.init_app(app)
    auth.init_app(app)
    views.init_app(app)
    for module in (login, sso, account, dashboard, keys, admin, policies, content, models_views):
        module.init_app(app)
    finetune_views.init_app(app)
    audit_views.init_app(app)
    access.check_declared(app)
    behind_proxies(app, settings.proxy_hops)
    return app


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
