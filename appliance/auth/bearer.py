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

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from appliance.auth.api_keys import KEY_PREFIX, authenticate_api_key
from appliance.auth.oidc_bearer import OidcVerifier
from appliance.auth.principal import Principal
from appliance.auth.tokens import (
    ISSUER,
    KeyStateCache,
    LocalTokens,
    invalid_token,
    principal_for_local_token,
    unverified_parts,
)
from appliance.errors import AuthenticationFailed

if TYPE_CHECKING:
    from appliance.services import Services


@dataclass
class BearerVerifiers:
    """Per-process state of bearer authentication, built once per app (not per request):
    the local token key, the ≤ 1 s cache of API key state and the IdP's key set."""

    local: LocalTokens
    key_states: KeyStateCache
    oidc: OidcVerifier | None = None

    @classmethod
    def from_services(
        cls,
        services: Services,
        *,
        clock: Callable[[], float] = time.time,
        key_state_ttl_s: float = 0.5,
    ) -> BearerVerifiers:
        return cls(
            local=LocalTokens.from_services(services, clock=clock),
            key_states=KeyStateCache(key_state_ttl_s),
            oidc=OidcVerifier.from_settings(
                services.settings, frozenset(services.rbac.roles), clock=clock
            ),
        )


def authenticate_bearer(
    session: Session, token: str, services: Services, verifier_cache: BearerVerifiers
) -> Principal:
    """The principal a bearer credential stands for, or AuthenticationFailed (fail closed).

    ``services`` is accepted for symmetry with the other entry points (and future use by
    the IdP role mapping); everything built from it lives in ``verifier_cache``.
    """
    if token.startswith(KEY_PREFIX):
        return Principal.from_api_key(authenticate_api_key(session, token))
    if token.count(".") != 2:
        raise AuthenticationFailed("Incorrect API key provided.")
    header, claims = unverified_parts(token)
    issuer = claims.get("iss")
    if header.get("kid") == verifier_cache.local.kid or issuer == ISSUER:
        return principal_for_local_token(
            session, verifier_cache.local, verifier_cache.key_states, token, header
        )
    oidc = verifier_cache.oidc
    if oidc is not None and issuer == oidc.issuer:
        return oidc.verify(token, header)
    raise invalid_token("The access token was issued by an issuer this API does not accept.")
