"""Access tokens of the enterprise IdP (OIDC), verified against its published key set (JWKS).

The key set is fetched once (from ``oidc_jwks_url``, or from the ``jwks_uri`` of
``{issuer}/.well-known/openid-configuration``), kept in memory and refetched when it is
older than ``max_age_s``. A token whose ``kid`` is not in the set triggers one refetch
(at most one per ``min_refresh_interval_s``, so a flood of forged kids cannot hammer the
IdP) and is refused if the kid is still unknown: this is how a key rotation at the IdP
is picked up without a restart.

Roles: the ``oidc_roles_claim`` claim (a list of group names): a group named like a role of
the RBAC policy grants it, and the policy's ``sso.roles`` table maps other groups to roles
(the same table the portal's SSO login uses).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, Key, RSAKey

from appliance.auth.principal import Principal
from appliance.auth.tokens import check_claims, invalid_token, unverified_parts
from appliance.config import Settings
from appliance.errors import ConfigError, UpstreamUnavailable

log = logging.getLogger(__name__)

#: Signature algorithms accepted from the IdP (asymmetric only: never HS*, never none).
ALGORITHMS = ("RS256", "ES256")
_KEY_TYPES: dict[str, type[Key]] = {"RS256": RSAKey, "ES256": ECKey}
LEEWAY_S = 30


class JwksUnavailable(Exception):
    """The IdP's discovery document or key set could not be fetched or read."""


class JwksCache:
    """The IdP's signing keys by kid, fetched lazily and refreshed periodically.

    Thread-safe (and gevent-safe): one fetch at a time; readers use the last good set.
    """

    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str | None = None,
        http: httpx.Client | None = None,
        max_age_s: float = 600.0,
        min_refresh_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.http = http or httpx.Client(timeout=httpx.Timeout(5.0, connect=3.0))
        self.max_age_s = max_age_s
        self.min_refresh_interval_s = min_refresh_interval_s
        self.clock = clock
        self._keys: dict[str, Key] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> Key | None:
        """The signing key ``kid`` (or the only key, for a token without kid), or None."""
        self._refresh_if_stale()
        found = self._lookup(kid)
        if found is None and self._may_refresh():
            self._refresh("unknown kid")
            found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> Key | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _may_refresh(self) -> bool:
        return (
            self._attempted_at is None
            or self.clock() - self._attempted_at >= self.min_refresh_interval_s
        )

    def _refresh_if_stale(self) -> None:
        if self._fetched_at is None:
            if self._may_refresh():
                self._refresh("first use")
            if self._fetched_at is None:
                raise JwksUnavailable("the identity provider's signing keys are not available")
        elif self.clock() - self._fetched_at >= self.max_age_s and self._may_refresh():
            self._refresh("periodic", wait=False)

    def _refresh(self, reason: str, *, wait: bool = True) -> None:
        """Fetch the set once; with ``wait=False`` (periodic refresh) a request finding a
        fetch under way goes on with the current keys instead of waiting for the IdP."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            if self._attempted_at is not None and not self._may_refresh():
                return  # another request refreshed while this one waited
            self._attempted_at = self.clock()
            try:
                keys = self._fetch()
            except JwksUnavailable as exc:
                # Keep the last good set: a flaky IdP must not lock everybody out.
                log.warning("could not refresh the IdP key set (%s): %s", reason, exc)
                return
            self._keys = keys
            self._fetched_at = self.clock()
            log.info("fetched the IdP key set (%s): %d signing keys", reason, len(keys))
        finally:
            self._lock.release()

    def _fetch(self) -> dict[str, Key]:
        url = self.jwks_url or self._discover_jwks_url()
        return parse_jwks(self._get_json(url))

    def _discover_jwks_url(self) -> str:
        document = self._get_json(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
        # OpenID Connect Discovery 1.0 §4.3: the document must name the issuer we trust.
        if document.get("issuer") != self.issuer:
            raise JwksUnavailable("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise JwksUnavailable("the discovery document has no jwks_uri")
        return jwks_uri

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailable(f"GET {url}: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise JwksUnavailable(f"GET {url}: not a JSON object")
        return data


def parse_jwks(document: Mapping[str, Any]) -> dict[str, Key]:
    """The signature keys of a JWKS document by kid; keys we cannot use are skipped."""
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, list):
        raise JwksUnavailable("the key set has no 'keys' list")
    keys: dict[str, Key] = {}
    for index, raw in enumerate(raw_keys):
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        if raw.get("kty") not in ("RSA", "EC"):
            continue
        kid = raw.get("kid") or f"#{index}"
        key_cls: type[Key] = RSAKey if raw["kty"] == "RSA" else ECKey
        try:
            keys[str(kid)] = key_cls.import_key(raw)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("skipping unusable key %s of the IdP key set: %s", kid, exc)
    return keys


@dataclass
class OidcVerifier:
    """Verifies IdP access tokens and maps them to principals."""

    issuer: str
    audience: str
    roles_claim: str
    role_names: frozenset[str]
    jwks: JwksCache
    leeway_s: int = LEEWAY_S
    clock: Callable[[], float] = time.time
    group_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        role_names: frozenset[str],
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        min_refresh_interval_s: float = 10.0,
        group_roles: Mapping[str, tuple[str, ...]] | None = None,
    ) -> OidcVerifier | None:
        """The verifier the settings ask for, or None when no IdP is configured."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_audience:
            raise ConfigError(
                "invalid setting oidc_audience (APPLIANCE_OIDC_AUDIENCE): "
                "required when oidc_issuer is set"
            )
        jwks = JwksCache(
            settings.oidc_issuer,
            jwks_url=settings.oidc_jwks_url,
            http=http,
            min_refresh_interval_s=min_refresh_interval_s,
            clock=monotonic,
        )
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            roles_claim=settings.oidc_roles_claim,
            role_names=role_names,
            jwks=jwks,
            clock=clock,
            group_roles=dict(group_roles or {}),
        )

    def verify(self, token: str, header: dict[str, Any] | None = None) -> Principal:
        """The principal of a valid IdP access token, or AuthenticationFailed."""
        header = header if header is not None else unverified_parts(token)[0]
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise invalid_token("The access token's signing algorithm is not accepted.")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise invalid_token("The access token is malformed.")
        try:
            key = self.jwks.key(kid)
        except JwksUnavailable:
            raise UpstreamUnavailable(
                "The identity provider's signing keys cannot be fetched; try again later.",
                code="idp_unavailable",
            ) from None
        if key is None:
            raise invalid_token("The access token was signed with a key the IdP does not publish.")
        if not isinstance(key, _KEY_TYPES[alg]):
            raise invalid_token("The access token's signing algorithm does not match its key.")
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except BadSignatureError:
            raise invalid_token("The access token's signature is invalid.") from None
        except JoseError:
            raise invalid_token("The access token is malformed.") from None
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=self.leeway_s,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        check_claims(registry, claims)
        return self.principal(claims)

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        username = claims.get("preferred_username")
        name = username if isinstance(username, str) and username else claims["sub"]
        return Principal(
            name=name,
            user_id=None,  # not a local user
            roles=tuple(sorted(self.roles_of(self.groups(claims)))),
        )

    def roles_of(self, groups: list[str]) -> set[str]:
        mapped = {role for group in groups for role in self.group_roles.get(group, ())}
        return set(self.role_names.intersection(groups)) | (mapped & self.role_names)

    def groups(self, claims: Mapping[str, Any]) -> list[str]:
        """The groups claim: an exact claim name, else a dotted path (``realm_access.roles``)."""
        value: Any = claims.get(self.roles_claim)
        if value is None and "." in self.roles_claim:
            value = claims
            for part in self.roles_claim.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
        return []
