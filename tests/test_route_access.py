"""Every route of both apps and the access it declares, as a table written down once.

The table was taken from the apps before the API moved from its endpoint table to the
decorators the portal uses: a route whose declaration changes, appears or goes away
fails here until the table says so on purpose.
"""

from __future__ import annotations

from flask import Flask

from appliance.api.app import create_app as create_api
from appliance.auth import access
from appliance.portal.app import create_app as create_portal
from appliance.services import Services

Row = tuple[str, str, str, str | None]

# Any endpoint family lists the caller's models (issue 19).
ANY_INVOKE = (
    "api:audio:invoke | api:classify:invoke | api:model:invoke | api:pooling:invoke | "
    "api:rerank:invoke | api:responses:invoke | api:score:invoke | api:tokenize:invoke"
)

API: list[Row] = [
    ("/classify", "POST", "vllm.classify", "api:classify:invoke"),
    ("/detokenize", "POST", "vllm.detokenize", "api:tokenize:invoke"),
    ("/healthz", "GET", "health.healthz", "public"),
    ("/oauth/token", "POST", "oauth.token", "public"),
    ("/openapi.json", "GET", "openapi.document", "public"),
    ("/pooling", "POST", "vllm.pooling", "api:pooling:invoke"),
    ("/readyz", "GET", "health.readyz", "public"),
    ("/rerank", "POST", "vllm.rerank", "api:rerank:invoke"),
    ("/score", "POST", "vllm.score", "api:score:invoke"),
    ("/tokenize", "POST", "vllm.tokenize", "api:tokenize:invoke"),
    ("/v1/audio/transcriptions", "POST", "v1.audio_transcriptions", "api:audio:invoke"),
    ("/v1/audio/translations", "POST", "v1.audio_translations", "api:audio:invoke"),
    ("/v1/chat/completions", "POST", "v1.chat_completions", "api:model:invoke"),
    ("/v1/completions", "POST", "v1.completions", "api:model:invoke"),
    ("/v1/embeddings", "POST", "v1.embeddings", "api:model:invoke"),
    ("/v1/feedback", "POST", "v1.feedback", "api:model:invoke"),
    ("/v1/models", "GET", "v1.models", ANY_INVOKE),
    ("/v1/moderations", "POST", "v1.moderations", "api:moderations:invoke"),
    ("/v1/rerank", "POST", "v1.rerank_v1", "api:rerank:invoke"),
    ("/v1/responses", "POST", "v1.responses", "api:responses:invoke"),
    ("/v1/score", "POST", "v1.score_v1", "api:score:invoke"),
    ("/v2/rerank", "POST", "vllm.rerank_v2", "api:rerank:invoke"),
]

PORTAL: list[Row] = [
    ("/", "GET", "dashboard.home", "portal:dashboard:read"),
    ("/account", "GET,POST", "account.account", "authenticated"),
    ("/account/sessions/<int:session_id>/end", "POST", "account.end_one", "authenticated"),
    ("/account/sign-out-everywhere", "POST", "account.sign_out_everywhere", "authenticated"),
    ("/account/totp", "GET,POST", "auth.totp_enrol", "authenticated"),
    ("/audit", "GET", "audit.index", "audit:read"),
    ("/audit/<event_id>", "GET", "audit.event", "audit:read"),
    ("/audit/export", "GET", "audit.export", "audit:export"),
    ("/audit/integrity", "GET", "audit.integrity", "audit:read"),
    ("/audit/verify", "POST", "audit.verify_now", "audit:read"),
    ("/content", "GET", "content.index", "admin:policies:read"),
    ("/content/<category>/terms.txt", "GET", "content.export", "admin:policies:read"),
    ("/content/import", "POST", "content.import_terms", "admin:policies:write"),
    ("/content/test", "POST", "content.test", "admin:policies:read"),
    ("/finetune", "GET", "finetune.index", "admin:finetune:read"),
    ("/finetune/<path:alias>/run", "POST", "finetune.run_now", "admin:finetune:write"),
    ("/finetune/<path:alias>/runs/<version>", "GET", "finetune.run_detail", "admin:finetune:read"),
    (
        "/finetune/<path:alias>/runs/<version>/promote",
        "GET,POST",
        "finetune.promote",
        "admin:finetune:write",
    ),
    (
        "/finetune/<path:alias>/runs/<version>/rollback",
        "GET,POST",
        "finetune.rollback",
        "admin:finetune:write",
    ),
    (
        "/finetune/<path:alias>/runs/<version>/status",
        "GET",
        "finetune.run_status",
        "admin:finetune:read",
    ),
    ("/finetune/datasets", "POST", "finetune.upload", "admin:finetune:write"),
    ("/healthz", "GET", "main.healthz", "public"),
    ("/keys", "GET", "keys.index", "admin:keys:read | keys:own:read"),
    ("/keys", "POST", "keys.create", "admin:keys:write | keys:own:write"),
    ("/keys/<int:key_id>/revoke", "GET,POST", "keys.revoke", "admin:keys:write | keys:own:write"),
    ("/login", "GET,POST", "auth.login", "public"),
    ("/login/totp", "GET,POST", "auth.totp", "public"),
    ("/logout", "POST", "auth.logout", "authenticated"),
    ("/models", "GET", "models.index", "admin:models:read"),
    ("/models/aliases/<name>/weights", "POST", "models.weights", "admin:models:write"),
    ("/policies", "GET", "policies.index", "admin:policies:read"),
    ("/policies/<name>", "GET", "policies.view", "admin:policies:read"),
    ("/policies/<name>", "POST", "policies.save", "admin:policies:write"),
    ("/policies/<name>/preview", "POST", "policies.preview", "admin:policies:write"),
    ("/policies/try", "POST", "policies.try_it", "admin:policies:read"),
    ("/role-mappings", "GET", "users.mappings", "admin:users:read"),
    ("/settings", "GET", "settings.index", "admin:settings:read"),
    ("/settings", "POST", "settings.save", "admin:settings:write"),
    ("/sso/callback", "GET", "sso.callback", "public"),
    ("/sso/login", "GET", "sso.login", "public"),
    ("/users", "GET", "users.index", "admin:users:read"),
    ("/users", "POST", "users.create", "admin:users:write"),
    ("/users/<int:user_id>", "GET", "users.detail", "admin:users:read"),
    (
        "/users/<int:user_id>/<any('reset-totp', 'reset-password'):action>",
        "GET,POST",
        "users.credential_reset",
        "admin:users:write",
    ),
    (
        "/users/<int:user_id>/<any(deactivate, activate, unlock, 'sign-out'):action>",
        "GET,POST",
        "users.account_action",
        "admin:users:write",
    ),
    ("/users/<int:user_id>/roles", "POST", "users.roles", "admin:users:write"),
    (
        "/users/<int:user_id>/sessions/<int:session_id>/end",
        "POST",
        "users.end_user_session",
        "admin:users:write",
    ),
]


def declared_routes(app: Flask) -> list[Row]:
    """(rule, methods, endpoint, declared access) of every route except static files."""
    return sorted(
        (
            rule.rule,
            ",".join(sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})),
            rule.endpoint,
            _words(access.endpoint_access(app, rule.endpoint)),
        )
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
    )


def _words(declared: access.Access | None) -> str | None:
    if declared is None:
        return None
    if isinstance(declared, access.Open):
        return declared.value
    return " | ".join(sorted(permission.value for permission in declared))


def test_api_routes_declare_what_they_always_did(sqlite_services: Services) -> None:
    app = create_api(services=sqlite_services)
    try:
        assert declared_routes(app) == API
    finally:
        app.extensions["appliance"].close()


def test_portal_routes_declare_what_they_always_did(sqlite_services: Services) -> None:
    assert declared_routes(create_portal(services=sqlite_services)) == PORTAL
