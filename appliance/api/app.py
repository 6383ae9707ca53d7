"""The API app's factory: settings in, a WSGI app out; no work per request that can be done here."""

from __future__ import annotations

import functools

from flask import Flask, Response, current_app, g, request

from appliance.api import admission, cors, health, metrics, oauth, openapi, routes
from appliance.api import context as ctx
from appliance.api.accounting import finish_call, outcome_of
from appliance.api.chunked import BoundedChunkedBody
from appliance.api.errors import register_error_handlers
from appliance.audit.content import KEY_PURPOSE
from appliance.audit.writer import AuditWriter
from appliance.auth import access
from appliance.auth.bearer import authenticate_bearer
from appliance.auth.principal import bearer_token
from appliance.config import Settings, load_settings
from appliance.errors import Forbidden
from appliance.limits import SHARED_LIMITS_FILE, Limiter
from appliance.proxies import behind_proxies
from appliance.services import Services, build_services
from appliance.upstream.client import UpstreamClient
from appliance.upstream.credentials import UpstreamCredentials
from appliance.upstream.registry import RegistryCache

# Who may call each endpoint is declared on its view, with the decorators both apps use
# (appliance.auth.access): the factory refuses to build an app with a route that declares
# nothing, and the RBAC matrix test calls every route as every role.

# Public and unaudited: no key is read and no event is written.
PUBLIC_ENDPOINTS = {"health.healthz", "health.readyz", "openapi.document"}
# Authenticates its own OAuth client; unlike the public endpoints it is audited.
SELF_AUTHENTICATED_ENDPOINTS = {"oauth.token"}


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    built_here = services is None
    services = services or build_services(settings or load_settings())
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = services.settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["appliance"] = ctx.ApiState(
        services=services,
        # Each upstream is sent the engine key, or the key registered for it.
        upstreams=UpstreamClient.from_settings(
            services.settings,
            credentials=UpstreamCredentials.of(services.settings, services.derived_key).ready(),
        ),
        # Token charges reach Redis summed, every 50 ms: one round trip per interval. Without
        # Redis, the workers of this host share their limits through a file of the run dir.
        limiter=Limiter(
            services.settings.redis_url,
            charge_interval_s=0.05,
            shared_file=services.settings.run_dir / SHARED_LIMITS_FILE,
        ),
        registry=RegistryCache(),
        # Up to 50 ms of calls share one audit transaction: commits stay off the CPU the
        # requests need, even for a client that sends one request at a time.
        audit=AuditWriter(services.db, linger_s=0.05, on_dropped=metrics.count_audit_dropped),
        privacy_key=services.derived_key("privacy-hash"),
        conversations=services.conversations(),
        content_key=services.derived_key(KEY_PURPOSE),
        canary_key=services.derived_key("content-canary"),
    )
    metrics.set_limiter_mode(app.extensions["appliance"].limiter.mode)
    register_error_handlers(app)
    app.before_request(ctx.begin_request)
    app.before_request(authenticate)
    app.after_request(finish_request)
    app.register_blueprint(health.bp)
    app.register_blueprint(routes.bp)
    app.register_blueprint(routes.root)
    app.register_blueprint(oauth.bp)
    cors.init_app(app, services.settings.cors_allowed_origins)
    openapi.init_app(app, PUBLIC_ENDPOINTS)
    access.check_declared(app)
    behind_proxies(app, services.settings.proxy_hops)
    # A chunked body over MAX_CONTENT_LENGTH is refused (413), not cut to the limit.
    app.wsgi_app = BoundedChunkedBody(app.wsgi_app, services.settings.max_body_bytes)  # type: ignore[method-assign]
    if built_here:  # a process of its own: an edited policy is in force within seconds
        services.watch_policies("api").on_change(functools.partial(_policy_changed, app))
    return app


def _policy_changed(app: Flask, name: str, _before: object, _after: object) -> None:
    """Requests read the policies from Services; the bearer state holds what rbac.yaml
    decides for IdP tokens (its roles and group mapping), so it is built again."""
    if name == "rbac.yaml":
        oauth.rebuild_bearer_verifiers(app)


def authenticate() -> None:
    """Fail closed: a valid bearer token whose roles grant the route's declared permission.

    Public endpoints read no token; an unknown path still needs one (then 404). So does a
    CORS preflight, unless it comes from an allowed origin (browsers send it without one).
    """
    if cors.is_preflight():
        return
    declared = access.endpoint_access(current_app, request.endpoint)
    if declared is access.PUBLIC:
        return
    token = bearer_token(request.headers.get("Authorization"))
    g.principal = authenticate_bearer(token, ctx.state().services.db, oauth.bearer_verifiers())
    if request.endpoint is not None and not access.allows(
        ctx.state().services.rbac, g.principal.roles, declared
    ):
        needed = access.describe(declared) if declared is not None else "a declared permission"
        raise Forbidden(f"Permission '{needed}' is required.")


def finish_request(response: Response) -> Response:
    """Tag the response; account and audit the call once the response has been sent.

    Once the response closes, the call's tokens are charged and its event queued; both
    reach Redis and the database in batches, in the background, so neither the caller
    nor its next request waits for them. Streams settle theirs when they end.
    """
    response.headers["X-Request-Id"] = g.get("request_id", "")
    if routes.is_api_path(request.path):
        response.headers.update(admission.ratelimit_headers())
    if "started" in g:
        metrics.observe_request(
            request.endpoint or "unmatched", response.status_code, ctx.elapsed_ms() / 1000
        )
    if request.endpoint in PUBLIC_ENDPOINTS or g.get("audit_deferred") or "call" not in g:
        return response
    if g.get("principal") is None and cors.is_preflight():
        return response  # a browser's question, answered without a credential: no call
    settle = functools.partial(
        finish_call,
        ctx.state(),
        ctx.call(),
        status=response.status_code,
        outcome=outcome_of(response.status_code),
        principal=g.principal,
        context=ctx.request_context(),
        duration_ms=ctx.elapsed_ms(),
    )
    response.call_on_close(settle)
    return response
