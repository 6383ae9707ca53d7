"""``POST /oauth/token``: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).

A service account exchanges its API key for a short-lived JWT: ``client_id`` is the key's
public id (``sk-app-xxxxxxxx``), ``client_secret`` the full key, sent by HTTP Basic
(``client_secret_basic``) or as form fields (``client_secret_post``), never both. This
endpoint speaks OAuth, not OpenAI: errors are RFC 6749 §5.2 bodies with
``Cache-Control: no-store``, rendered by authlib's error classes.

Why not authlib's ``AuthorizationServer``: it refuses any request URL that is not https
(TLS ends at nginx here, so the app sees http) unless ``AUTHLIB_INSECURE_TRANSPORT`` is
set process-wide; it reads parameters from ``request.values``, so it would accept a
client secret in the query string; it answers a missing ``grant_type`` with
``unsupported_grant_type`` instead of ``invalid_request``; and it is built around a
client registry and a token store that this grant does not have. The grant itself is
a few checks, so it lives here, with authlib providing the RFC error responses and
joserfc (authlib's JOSE library) the tokens.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedGrantTypeError,
)
from flask import Blueprint, Response, current_app, g, json, request
from flask.blueprints import BlueprintSetupState
from flask.sansio.app import App
from werkzeug.exceptions import HTTPException

from appliance.api import context as ctx
from appliance.audit.events import AuditAction
from appliance.auth.access import public
from appliance.auth.api_keys import ID_CHARS, KEY_PREFIX, authenticate_api_key
from appliance.auth.bearer import BearerVerifiers
from appliance.auth.principal import Principal
from appliance.auth.tokens import SCOPE
from appliance.errors import AuthenticationFailed

bp = Blueprint("oauth", __name__)

EXTENSION = "appliance.bearer"
GRANT_TYPE = "client_credentials"
REALM = "appliance"
FORM_TYPE = "application/x-www-form-urlencoded"
_CREDENTIAL_FIELDS = ("client_id", "client_secret")


@bp.record_once
def _install(state: BlueprintSetupState) -> None:
    """Build the per-process bearer state once, when the blueprint is registered."""
    install_bearer_verifiers(state.app)


def install_bearer_verifiers(app: App) -> BearerVerifiers:
    """The app's BearerVerifiers, built from its Services on first call (in the factory)."""
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = app.extensions["appliance"].services.bearer_verifiers()
    return app.extensions[EXTENSION]


def rebuild_bearer_verifiers(app: App) -> None:
    """After rbac.yaml changed: the IdP's roles and groups are read again (API keys and
    local tokens keep their caches: their roles are looked up per request)."""
    app.extensions[EXTENSION] = app.extensions["appliance"].services.bearer_verifiers()


def bearer_verifiers() -> BearerVerifiers:
    """The current app's BearerVerifiers (for ``authenticate_bearer``)."""
    return current_app.extensions[EXTENSION]


class _InvalidClient(InvalidClientError):
    """invalid_client, always 401 with a Basic challenge (RFC 6749 §5.2, RFC 7617)."""

    status_code = 401

    def get_headers(self) -> list[tuple[str, str]]:
        description = self.get_error_description().replace('"', "'")
        challenge = (
            f'Basic realm="{REALM}", charset="UTF-8", error="{self.error}", '
            f'error_description="{description}"'
        )
        return [*default_json_headers, ("WWW-Authenticate", challenge)]


def _printable(text: str, limit: int = 40) -> str:
    """Client text echoed in an error: RFC 6749 allows only %x20-21 / %x23-5B / %x5D-7E."""
    kept = "".join(c for c in text if " " <= c <= "~" and c not in '"\\')
    return kept[:limit] or "?"


def _respond(status: int, body: dict[str, Any], headers: list[tuple[str, str]]) -> Response:
    return Response(json.dumps(body), status=status, headers=headers)


def _error(error: OAuth2Error) -> Response:
    _note(oauth_error=error.error)
    return _respond(*error())


def _note(**details: Any) -> None:
    """Facts for the request's audit event (written by the app's finish_request)."""
    if "call" in g:
        ctx.call().action = AuditAction.TOKEN_ISSUE
        ctx.call().details.update(details)


@bp.errorhandler(OAuth2Error)
def _oauth_error(error: OAuth2Error) -> Response:
    return _error(error)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    # E.g. a body over the size limit while the form is parsed: still an OAuth error body.
    error = InvalidRequestError(description=exc.name)
    error.status_code = exc.code or 400
    return _error(error)


@bp.post("/oauth/token")
@public  # authenticates its own OAuth client (an API key)
def token() -> Response:
    """Issue an access token for the API key that authenticates as the client."""
    if request.mimetype != FORM_TYPE:
        raise InvalidRequestError(description=f"The request body must be {FORM_TYPE}.")
    form = request.form
    for name in form:
        if len(form.getlist(name)) > 1:
            raise InvalidRequestError(
                description=f"The parameter '{_printable(name)}' is repeated."
            )
    if any(name in request.args for name in (*_CREDENTIAL_FIELDS, "grant_type")):
        raise InvalidRequestError(description="Parameters must be sent in the body, not the URL.")
    grant_type = form.get("grant_type")
    _note(oauth_grant_type=grant_type)
    if not grant_type:
        raise InvalidRequestError(description="The 'grant_type' parameter is required.")
    if grant_type != GRANT_TYPE:
        unsupported = UnsupportedGrantTypeError(grant_type)
        unsupported.description = f"The only grant_type supported is '{GRANT_TYPE}'."
        raise unsupported
    scope = _requested_scope(form.get("scope"))
    client_id, client_secret = _client_credentials()
    _note(oauth_client_id=client_id)

    api = ctx.state()
    verifiers = bearer_verifiers()
    with api.services.db.session() as session:
        try:
            key = authenticate_api_key(session, client_secret)
        except AuthenticationFailed as exc:
            raise _InvalidClient(description=exc.message) from None
        issued = verifiers.local.issue(key, scope)
        g.principal = Principal.from_api_key(key)
    _note(oauth_jti=issued.jti)
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }
    return _respond(200, body, default_json_headers)


def _requested_scope(raw: str | None) -> str:
    """The granted scope: the only scope there is, if the request asks for nothing else."""
    requested = set((raw or "").split())
    if requested - {SCOPE}:
        raise InvalidScopeError(description=f"The only scope this server grants is '{SCOPE}'.")
    return SCOPE


def _client_credentials() -> tuple[str, str]:
    """client_id and client_secret from exactly one authentication method (RFC 6749 §2.3.1)."""
    header = request.headers.get("Authorization")
    in_form = any(name in request.form for name in _CREDENTIAL_FIELDS)
    if header and in_form:
        raise InvalidRequestError(
            description="Use one client authentication method: HTTP Basic or form fields."
        )
    if header:
        client_id, client_secret = _basic_credentials(header)
    elif in_form:
        client_id = request.form.get("client_id", "")
        client_secret = request.form.get("client_secret", "")
    else:
        raise _InvalidClient(description="Client authentication is required.")
    if not client_id or not client_secret:
        raise _InvalidClient(description="Both client_id and client_secret are required.")
    if (
        not client_id.startswith(KEY_PREFIX)
        or len(client_id) != len(KEY_PREFIX) + ID_CHARS
        or not client_secret.startswith(client_id)
    ):
        raise _InvalidClient(
            description="The client_id must be the public id of the API key in client_secret."
        )
    return client_id, client_secret


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _InvalidClient(description="Client authentication must use the Basic scheme.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _InvalidClient(description="The Basic credentials are not valid base64.") from None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        raise _InvalidClient(description="The Basic credentials lack a client_secret.")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(client_secret.replace("+", " "))
