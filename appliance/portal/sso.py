"""Signing in through the enterprise IdP: OpenID Connect with authlib.

Discovery (``ISSUER/.well-known/openid-configuration``), the authorization code flow
with PKCE (S256), ``state`` and ``nonce`` kept in the session for the round trip, and
the ID token validated by authlib (signature against the IdP's JWKS, issuer, audience,
expiry, nonce). The groups claim named in the RBAC policy gives the roles
(``appliance.auth.sso``): an account is created at the first login, its roles follow the
IdP at every login, and it is deactivated when its groups no longer map to a role.

The client (issuer, client id, sealed secret, scopes) is configured on the Settings page,
so one authlib client is registered per configuration, on first use.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import requests
from authlib.integrations.flask_client import FlaskOAuth2App, OAuth, OAuthError
from flask import Blueprint, Flask, current_app, flash, redirect, request, session, url_for
from joserfc.errors import JoseError
from werkzeug.wrappers import Response as BaseResponse

from appliance.audit.events import AuditAction, record
from appliance.auth.access import public
from appliance.auth.sso import SsoLogin, provision
from appliance.portal import site_settings
from appliance.portal.auth import MFA_IDP, safe_next, start_session
from appliance.portal.context import db_session, portal_services, request_context

log = logging.getLogger(__name__)
bp = Blueprint("sso", __name__)
OAUTH_KEY = "appliance_oauth"
SSO_FAILED = "Single sign-on did not complete. Try again, or ask an administrator."
NO_ROLE = "Your groups at the identity provider grant no role in this appliance."
# What can go wrong talking to the IdP: its errors, a bad token, the network.
IDP_TIMEOUT_S = 10
IDP_ERRORS = (OAuthError, JoseError, requests.RequestException, KeyError, ValueError)


def init_app(app: Flask) -> None:
    app.extensions[OAUTH_KEY] = OAuth(app)
    app.extensions[OAUTH_KEY + "_lock"] = threading.Lock()
    app.register_blueprint(bp)


class SsoNotConfigured(Exception):
    pass


def _client() -> tuple[FlaskOAuth2App, str]:
    """The authlib client of the current configuration, and its issuer."""
    db = db_session()
    settings = site_settings.load(db)
    if not (settings.sso_enabled and settings.sso_issuer and settings.sso_client_id):
        raise SsoNotConfigured
    services = portal_services()
    secret = site_settings.client_secret(db, services.derived_key(site_settings.KEY_PURPOSE))
    fingerprint = hashlib.sha256(
        "\0".join(
            [settings.sso_issuer, settings.sso_client_id, secret or "", settings.sso_scopes]
        ).encode()
    ).hexdigest()[:16]
    name = f"sso_{fingerprint}"
    oauth: OAuth = current_app.extensions[OAUTH_KEY]
    with current_app.extensions[OAUTH_KEY + "_lock"]:
        client = oauth.create_client(name)
        if client is None:
            oauth.register(
                name,
                client_id=settings.sso_client_id,
                client_secret=secret,
                server_metadata_url=f"{settings.sso_issuer}/.well-known/openid-configuration",
                client_kwargs={
                    "scope": settings.sso_scopes,
                    "code_challenge_method": "S256",
                    "default_timeout": IDP_TIMEOUT_S,  # discovery, JWKS, token, userinfo
                },
            )
            client = oauth.create_client(name)
    assert isinstance(client, FlaskOAuth2App)
    return client, settings.sso_issuer


@bp.get("/sso/login")
@public
def login() -> BaseResponse:
    try:
        client, issuer = _client()
        metadata = client.load_server_metadata()
        if metadata.get("issuer", "").rstrip("/") != issuer:
            raise ValueError("the discovery document names another issuer")
        session["sso_next"] = safe_next(request.args.get("next"))
        return client.authorize_redirect(url_for("sso.callback", _external=True))
    except SsoNotConfigured:
        flash("Single sign-on is not configured.", "error")
    except IDP_ERRORS as exc:
        log.warning("SSO: the identity provider is unavailable: %s", type(exc).__name__)
        flash("The identity provider cannot be reached. Try again later.", "error")
    return redirect(url_for("auth.login"))


@bp.get("/sso/callback")
@public
def callback() -> BaseResponse:
    """The IdP's redirect back: code → tokens → validated ID token → account → session."""
    try:
        client, issuer = _client()
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if not claims.get("sub"):
            raise ValueError("no validated ID token in the token response")
        claims = _with_userinfo(client, token, claims)
    except SsoNotConfigured:
        flash("Single sign-on is not configured.", "error")
        return redirect(url_for("auth.login"))
    except IDP_ERRORS as exc:
        error = exc.error if isinstance(exc, OAuthError) else type(exc).__name__
        _failed(None, "sso_error", error=str(error)[:64])
        flash(SSO_FAILED, "error")
        return redirect(url_for("auth.login"))

    db = db_session()
    outcome = provision(db, portal_services().rbac, issuer, claims)
    _audit_account_changes(outcome)
    user = outcome.user
    if user is None or not outcome.allowed:
        reason = "sso_no_role" if not outcome.roles else "inactive"
        _failed(user.username if user else str(claims.get("preferred_username") or ""), reason)
        flash(NO_ROLE if not outcome.roles else "This account is deactivated.", "error")
        return redirect(url_for("auth.login"))
    record(
        db,
        AuditAction.LOGIN,
        actor=user.username,
        actor_roles=",".join(user.role_names)[:255],
        context=request_context(),
        method="sso",
        issuer=issuer,
        groups=outcome.groups[:50],
    )
    db.commit()
    next_url = safe_next(session.get("sso_next"))
    start_session(user, source="sso", mfa=MFA_IDP, id_token=token.get("id_token"))
    return redirect(next_url)


def _with_userinfo(
    client: FlaskOAuth2App, token: dict[str, Any], claims: dict[str, Any]
) -> dict[str, Any]:
    """Claims the ID token lacks (the groups claim, often) from the userinfo endpoint."""
    claim = portal_services().rbac.sso.claim.split(".")[0]
    if claim in claims or "userinfo_endpoint" not in client.load_server_metadata():
        return claims
    extra = dict(client.userinfo(token=token))
    if extra.get("sub") != claims["sub"]:
        raise ValueError("userinfo is about another subject")
    return {**extra, **claims}


def _audit_account_changes(outcome: SsoLogin) -> None:
    db = db_session()
    user = outcome.user
    if user is None:
        return
    common: dict[str, Any] = {
        "actor": user.username,
        "target": user.username,
        "context": request_context(),
    }
    if outcome.created:
        record(db, AuditAction.USER_CREATE, **common, roles=outcome.roles, source="sso")
    elif outcome.roles_before != outcome.roles:
        record(
            db,
            AuditAction.USER_UPDATE,
            **common,
            roles_before=outcome.roles_before,
            roles=outcome.roles,
            source="sso",
        )
    if outcome.deactivated:
        record(db, AuditAction.USER_DEACTIVATE, **common, reason="sso_mapping")
    if outcome.reactivated:
        record(db, AuditAction.USER_ACTIVATE, **common, reason="sso_mapping")


def _failed(actor: str | None, reason: str, **details: Any) -> None:
    db = db_session()
    record(
        db,
        AuditAction.LOGIN_FAILED,
        outcome="failure",
        actor=(actor or "")[:128] or None,
        context=request_context(),
        reason=reason,
        method="sso",
        **details,
    )
    db.commit()


def logout_url(id_token: str | None) -> str | None:
    """The IdP's end-session URL (RP-initiated logout), if it has one."""
    try:
        client, _ = _client()
        metadata = client.load_server_metadata()
        if "end_session_endpoint" not in metadata:
            return None
        created = client.create_logout_url(
            post_logout_redirect_uri=url_for("auth.login", _external=True),
            id_token_hint=id_token,
            client_id=client.client_id,
        )
    except (SsoNotConfigured, *IDP_ERRORS):
        return None
    url: str = created["url"]
    return url
