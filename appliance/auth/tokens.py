"""Short-lived access tokens (JWTs) issued by the appliance to API keys, and their checks.

A token is HS256-signed with a key derived from the master key (``derived_key("api-jwt")``):
only the appliance issues and verifies these tokens, every host derives the same key, and
HMAC costs microseconds per request. Nobody outside needs to verify them, so there is no
public key to publish. The ``kid`` header is a fingerprint of that key, so a token signed
under a previous master key is refused as "signed by another key".

The token names the API key it was issued to (``key_id``). Who the caller is, their roles
and their model scope are read from that key at verification time, never trusted from the
token, and a revoked or expired key (or a disabled account) refuses all of its tokens.
:class:`KeyStateCache` keeps a key's state for at most ``ttl_s`` (≤ 1 s) per process, so a
revocation is effective on every worker within one second.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import OctKey

from appliance.auth.principal import Principal
from appliance.auth.rbac import Permission
from appliance.db import Database
from appliance.errors import AuthenticationFailed
from appliance.models import ApiKey
from appliance.ttlcache import TtlCache

ISSUER = "appliance"
AUDIENCE = "appliance-api"
ALGORITHM = "HS256"
SIGNING_KEY_PURPOSE = "api-jwt"
#: The one scope a token carries: it may do what its API key may do on the API.
SCOPE = str(Permission.API_MODEL_INVOKE)
#: Local tokens are checked to the second; clocks of one appliance's hosts agree.
LEEWAY_S = 5
#: A key's state is cached per process for at most this long (revocation within 1 s).
MAX_KEY_STATE_TTL_S = 1.0
#: Longer "tokens" are refused before any parsing.
MAX_TOKEN_CHARS = 16_384


def invalid_token(message: str, code: str = "invalid_token") -> AuthenticationFailed:
    return AuthenticationFailed(message, code=code)


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    jti: str


@dataclass(frozen=True)
class TokenClaims:
    """The verified claims of a local token that matter afterwards."""

    key_id: int
    subject: str
    jti: str
    expires_at: int


class LocalTokens:
    """Issues and verifies the appliance's own access tokens; built once per process."""

    def __init__(
        self, secret: bytes, ttl_s: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the token signing key must be at least 32 bytes")
        self._key = OctKey.import_key(secret)
        self.kid = hmac.new(secret, b"appliance api-jwt kid", hashlib.sha256).hexdigest()[:16]
        self.ttl_s = ttl_s
        self.clock = clock

    def issue(self, key: ApiKey, scope: str = SCOPE) -> IssuedToken:
        """A token for an authenticated, active API key; never outlives the key itself."""
        now = int(self.clock())
        exp = now + self.ttl_s
        if key.expires_at is not None:
            exp = min(exp, int(key.expires_at.timestamp()))
        jti = uuid.uuid4().hex
        claims = {
            "iss": ISSUER,
            "sub": key.user.username,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
            "key_id": key.id,
            "scope": scope,
        }
        token = jwt.encode({"alg": ALGORITHM, "kid": self.kid}, claims, self._key, [ALGORITHM])
        return IssuedToken(access_token=token, expires_in=exp - now, scope=scope, jti=jti)

    def verify(self, token: str, header: dict[str, Any] | None = None) -> TokenClaims:
        """The claims of a valid token, or AuthenticationFailed saying (safely) what is wrong.

        ``header`` is the token's unverified header when the caller has parsed it already.
        """
        header = header if header is not None else unverified_parts(token)[0]
        if header.get("alg") != ALGORITHM:
            raise invalid_token("The access token's signing algorithm is not accepted.")
        if header.get("kid") != self.kid:
            raise invalid_token("The access token was signed with a key this appliance lacks.")
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM]).claims
        except BadSignatureError:
            raise invalid_token("The access token's signature is invalid.") from None
        except JoseError:
            raise invalid_token("The access token is malformed.") from None
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=LEEWAY_S,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
            key_id={"essential": True},
        )
        check_claims(registry, claims)
        key_id = claims["key_id"]
        if not isinstance(key_id, int) or isinstance(key_id, bool) or not 0 < key_id < 2**31:
            raise invalid_token("The access token is malformed.")
        return TokenClaims(
            key_id=key_id, subject=claims["sub"], jti=claims["jti"], expires_at=claims["exp"]
        )


def check_claims(registry: jwt.JWTClaimsRegistry, claims: dict[str, Any]) -> None:
    """Validate registered claims; turn joserfc's errors into precise, safe messages."""
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise invalid_token("The access token has expired.", code="expired_token") from None
    except ClaimError as exc:
        raise invalid_token(_claim_message(exc.claim)) from None


def _claim_message(claim: str) -> str:
    messages = {
        "aud": "The access token is not intended for this API (audience).",
        "iss": "The access token was issued by an issuer this API does not accept.",
        "nbf": "The access token is not valid yet.",
        "iat": "The access token was issued in the future.",
    }
    return messages.get(claim, "The access token lacks a required claim or has an invalid one.")


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, NOT verified: only to choose who verifies it."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN_CHARS:
        raise invalid_token("The access token is malformed.")
    try:
        header, claims = (
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        )
    except (ValueError, binascii.Error):
        raise invalid_token("The access token is malformed.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid_token("The access token is malformed.")
    return header, claims


def key_state_cache(
    ttl_s: float, max_entries: int, clock: Callable[[], float]
) -> TtlCache[Any, Any]:
    """A cache of API key state: its TTL is the revocation bound, so at most one second."""
    if not 0 <= ttl_s <= MAX_KEY_STATE_TTL_S:
        raise ValueError(f"ttl_s must be between 0 and {MAX_KEY_STATE_TTL_S} seconds")
    return TtlCache(ttl_s, max_entries=max_entries, clock=clock)


@dataclass(frozen=True)
class _KeyState:
    principal: Principal
    key_expires_at: datetime | None


class KeyStateCache:
    """The principal behind an API key by id, cached per process for at most ``ttl_s``.

    Only active keys are cached; the expiry of a cached key is re-checked on every use.
    """

    def __init__(
        self,
        ttl_s: float = 0.5,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: TtlCache[int, _KeyState] = key_state_cache(ttl_s, max_entries, clock)

    def principal(self, db: Database, key_id: int, now: datetime | None = None) -> Principal:
        """The principal of the key, or AuthenticationFailed if the key is no longer active."""
        at = now or datetime.now(UTC)
        state = self._cache.get(key_id, lambda: _load_key_state(db, key_id, at))
        if state.key_expires_at is not None and state.key_expires_at <= at:
            self._cache.forget(key_id)
            raise invalid_token(
                "The API key of this access token has expired.", code="expired_api_key"
            )
        return state.principal

    def forget(self, key_id: int) -> None:
        self._cache.forget(key_id)


def _load_key_state(db: Database, key_id: int, now: datetime) -> _KeyState:
    with db.session() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            raise invalid_token("The API key of this access token no longer exists.")
        return _active_key_state(key, now)


def _active_key_state(key: ApiKey, now: datetime) -> _KeyState:
    if key.revoked_at is not None:
        raise invalid_token(
            "The API key of this access token has been revoked.", code="revoked_api_key"
        )
    if key.expires_at is not None and key.expires_at <= now:
        raise invalid_token("The API key of this access token has expired.", code="expired_api_key")
    if not key.user.is_active:
        raise invalid_token(
            "The account of this access token is disabled.", code="account_disabled"
        )
    return _KeyState(Principal.from_api_key(key), key.expires_at)


def principal_for_local_token(
    db: Database,
    tokens: LocalTokens,
    key_states: KeyStateCache,
    token: str,
    header: dict[str, Any] | None = None,
) -> Principal:
    """Verify one of our tokens and return the principal of its (still active) API key."""
    claims = tokens.verify(token, header)
    return key_states.principal(db, claims.key_id, datetime.fromtimestamp(tokens.clock(), UTC))
