"""The one entry point that turns an ``Authorization: Bearer`` credential into a principal.

Three kinds of credential, told apart by their shape:

- ``sk-app-…``: an API key (:mod:`appliance.auth.api_keys`);
- a JWT signed by this appliance (its ``kid``, or issuer ``appliance``): a short-lived
  token from ``POST /oauth/token`` (:mod:`appliance.auth.tokens`);
- a JWT whose issuer is the configured enterprise IdP: an OIDC access token
  (:mod:`appliance.auth.oidc_bearer`).

Anything else fails closed with AuthenticationFailed. The unverified header and claims
are only used to choose the verifier; each verifier checks everything itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from appliance.auth.api_keys import KEY_PREFIX, authenticate_api_key
from appliance.auth.oidc_bearer import OidcVerifier
from appliance.auth.principal import Principal
from appliance.auth.rbac import RbacPolicy
from appliance.auth.tokens import (
    ISSUER,
    KeyStateCache,
    LocalTokens,
    invalid_token,
    key_state_cache,
    principal_for_local_token,
    unverified_parts,
)
from appliance.config import Settings
from appliance.db import Database
from appliance.errors import AuthenticationFailed
from appliance.models import utcnow
from appliance.ttlcache import TtlCache


@dataclass(frozen=True)
class _CachedKey:
    principal: Principal
    expires_at: datetime | None


class ApiKeyCache:
    """Principals of presented API keys, by the keys' hashes, for at most ``ttl_s``.

    Saves a database round trip per request; ``ttl_s`` stays under a second so a revoked
    key stops working on every worker within one second. Expiry is checked on every use.
    """

    def __init__(
        self,
        ttl_s: float = 0.5,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: TtlCache[str, _CachedKey] = key_state_cache(ttl_s, max_entries, clock)

    def principal(self, db: Database, presented: str) -> Principal:
        """The key's principal; the database is read only when the cache has no fresh entry."""
        digest = hashlib.sha256(presented.encode()).hexdigest()
        hit = self._cache.get(digest, lambda: _load_key(db, presented))
        if hit.expires_at is not None and hit.expires_at <= utcnow():
            self._cache.forget(digest)  # loading it again gives the precise error
            hit = self._cache.get(digest, lambda: _load_key(db, presented))
        return hit.principal


def _load_key(db: Database, presented: str) -> _CachedKey:
    with db.session() as session:
        key = authenticate_api_key(session, presented)
        return _CachedKey(Principal.from_api_key(key), key.expires_at)


@dataclass
class BearerVerifiers:
    """Per-process state of bearer authentication, built once per app (not per request):
    the local token key, the ≤ 1 s cache of API key state and the IdP's key set."""

    local: LocalTokens
    key_states: KeyStateCache
    oidc: OidcVerifier | None = None
    api_keys: ApiKeyCache = field(default_factory=ApiKeyCache)

    @classmethod
    def build(
        cls,
        settings: Settings,
        rbac: RbacPolicy,
        token_key: bytes,
        *,
        clock: Callable[[], float] = time.time,
        key_state_ttl_s: float = 0.5,
    ) -> BearerVerifiers:
        """``token_key`` signs the local tokens (the master key's ``SIGNING_KEY_PURPOSE``
        key; ``Services.bearer_verifiers`` derives it), valid ``settings.jwt_ttl_s``; the
        IdP's tokens are verified if ``settings`` name one, its groups mapped by ``rbac``."""
        return cls(
            local=LocalTokens(token_key, settings.jwt_ttl_s, clock=clock),
            key_states=KeyStateCache(key_state_ttl_s),
            api_keys=ApiKeyCache(key_state_ttl_s),
            oidc=OidcVerifier.from_settings(
                settings,
                frozenset(rbac.roles),
                clock=clock,
                group_roles=rbac.sso.roles,
            ),
        )


def authenticate_bearer(token: str, db: Database, verifier_cache: BearerVerifiers) -> Principal:
    """The principal a bearer credential stands for, or AuthenticationFailed (fail closed).

    ``db`` holds the API keys; everything else lives in ``verifier_cache``.
    """
    if token.startswith(KEY_PREFIX):
        return verifier_cache.api_keys.principal(db, token)
    if token.count(".") != 2:
        raise AuthenticationFailed("Incorrect API key provided.")
    header, claims = unverified_parts(token)
    issuer = claims.get("iss")
    if header.get("kid") == verifier_cache.local.kid or issuer == ISSUER:
        return principal_for_local_token(
            db, verifier_cache.local, verifier_cache.key_states, token, header
        )
    oidc = verifier_cache.oidc
    if oidc is not None and issuer == oidc.issuer:
        return oidc.verify(token, header)
    raise invalid_token("The access token was issued by an issuer this API does not accept.")
