"""Accounts of SSO users: created just in time, roles from the policy's group mapping.

The portal's OpenID Connect login (``appliance.portal.sso``) validates the ID token and
hands its claims here. An SSO identity is its issuer and subject, never a user name: an
IdP user called like a local account gets another name rather than that account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.rbac import RbacPolicy
from appliance.auth.users import activate, deactivate, set_roles
from appliance.models import User, utcnow

SSO_SOURCE = "sso"
MAPPING_REASON = "sso_mapping"
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._@-]+")


@dataclass(frozen=True)
class SsoLogin:
    """What a login through the IdP did to the account."""

    user: User | None  # None: the groups grant no role and there was no account
    groups: list[str]
    roles: list[str]
    roles_before: list[str] = field(default_factory=list)
    created: bool = False
    deactivated: bool = False
    reactivated: bool = False

    @property
    def allowed(self) -> bool:
        return self.user is not None and self.user.is_active and bool(self.roles)


def provision(
    session: Session, policy: RbacPolicy, issuer: str, claims: dict[str, Any]
) -> SsoLogin:
    """Create or update the account of the ID token's subject; deactivate it if no role maps."""
    subject = str(claims["sub"])
    groups, roles = policy.sso_roles(claims)
    user = session.scalar(
        select(User).where(User.sso_issuer == issuer, User.sso_subject == subject)
    )
    if user is None:
        if not roles:
            return SsoLogin(None, groups, roles)
        user = User(
            username=_free_username(session, _wanted_name(claims, subject)),
            display_name=str(claims.get("name") or claims.get("preferred_username") or subject)[
                :255
            ],
            email=_email(claims),
            password_hash=None,
            auth_source=SSO_SOURCE,
            sso_issuer=issuer,
            sso_subject=subject,
        )
        session.add(user)
        set_roles(session, user, roles)
        user.sso_groups = groups
        user.last_login_at = utcnow()
        session.flush()
        return SsoLogin(user, groups, roles, created=True)

    before = user.role_names
    user.sso_groups = groups
    user.email = _email(claims) or user.email
    if not roles:
        deactivated = deactivate(user, MAPPING_REASON)
        set_roles(session, user, [])
        session.flush()
        return SsoLogin(user, groups, roles, before, deactivated=deactivated)
    reactivated = user.deactivated_reason == MAPPING_REASON and activate(user)
    set_roles(session, user, roles)
    if user.is_active:
        user.last_login_at = utcnow()
    session.flush()
    return SsoLogin(user, groups, roles, before, reactivated=reactivated)


@dataclass(frozen=True)
class MappingChange:
    user: User
    roles_before: list[str]
    roles: list[str]
    deactivated: bool


def resync(session: Session, policy: RbacPolicy) -> list[MappingChange]:
    """Apply a changed group mapping to every SSO account, from the groups it last had.

    Accounts left without a role are deactivated at once; their sessions end at their
    next request. Reactivation waits for the user's next login through the IdP.
    """
    changes = []
    for user in session.scalars(select(User).where(User.sso_subject.is_not(None))):
        if not user.is_active:
            continue
        roles = policy.sso.roles_for(list(user.sso_groups or []), frozenset(policy.roles))
        before = user.role_names
        if roles == before:
            continue
        deactivated = not roles and deactivate(user, MAPPING_REASON)
        set_roles(session, user, roles)
        changes.append(MappingChange(user, before, roles, deactivated))
    session.flush()
    return changes


def _wanted_name(claims: dict[str, Any], subject: str) -> str:
    for claim in ("preferred_username", "email"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return subject


def _free_username(session: Session, wanted: str) -> str:
    base = _NOT_IN_NAME.sub("-", wanted).strip("-._@")[:100] or "sso-user"
    if not base[0].isalnum():
        base = f"u{base}"
    name, n = base, 1
    while session.scalar(select(User.id).where(User.username == name)) is not None:
        n += 1
        name = f"{base}-{n}"
    return name


def _email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    return email[:255] if isinstance(email, str) and "@" in email else None
