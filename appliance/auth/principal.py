"""Who is calling: the principal an API request is made by, and the checks on it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from appliance.auth.api_keys import globs_allow
from appliance.auth.rbac import Permission, RbacPolicy
from appliance.errors import AuthenticationFailed, Forbidden
from appliance.models import ApiKey


@dataclass(frozen=True)
class Principal:
    name: str
    user_id: int | None  # None for principals from the enterprise IdP
    roles: tuple[str, ...]
    key_id: int | None = None
    key_prefix: str | None = None
    key_models: str = "*"
    # Per-key overrides of the role limits (None: the roles' limits apply).
    key_requests_per_minute: int | None = None
    key_tokens_per_day: int | None = None

    @classmethod
    def from_api_key(cls, key: ApiKey) -> Principal:
        return cls(
            name=key.user.username,
            user_id=key.user_id,
            roles=tuple(key.user.role_names),
            key_id=key.id,
            key_prefix=key.prefix,
            key_models=key.models,
            key_requests_per_minute=key.requests_per_minute,
            key_tokens_per_day=key.tokens_per_day,
        )


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or AuthenticationFailed."""
    if not header:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("The Authorization header must be 'Bearer <key>'.")
    return token.strip()


def may_invoke(
    principal: Principal,
    policy: RbacPolicy,
    model_name: str,
    permissions: Iterable[Permission] = (Permission.API_MODEL_INVOKE,),
) -> bool:
    """May the principal call the model through an endpoint needing any of ``permissions``?"""
    roles = list(principal.roles)
    return (
        any(policy.allows(roles, permission) for permission in permissions)
        and policy.allows_model(roles, model_name)
        and globs_allow(principal.key_models, model_name)
    )


def require_model_access(
    principal: Principal,
    policy: RbacPolicy,
    model_name: str,
    permission: Permission = Permission.API_MODEL_INVOKE,
) -> None:
    """Raise Forbidden naming the missing permission unless the principal may call the model."""
    if not policy.allows(list(principal.roles), permission):
        raise Forbidden(f"Permission '{permission}' is required.")
    if not may_invoke(principal, policy, model_name, (permission,)):
        raise Forbidden(
            f"Permission '{permission}' on model '{model_name}' is not granted to this key."
        )
