"""Accounts: creation, roles and password logins."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.passwords import generate_password, hash_password, verify_password
from appliance.auth.rbac import RbacPolicy
from appliance.errors import InvalidRequest, NotFound
from appliance.models import Role, User, utcnow

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
MIN_PASSWORD_LENGTH = 12


def sync_roles(session: Session, policy: RbacPolicy) -> None:
    """Make the roles table hold every role of the policy (roles are never deleted here)."""
    existing = {role.name: role for role in session.scalars(select(Role))}
    for grant in policy.roles.values():
        role = existing.get(grant.name) or Role(name=grant.name)
        role.description = grant.description
        session.add(role)
    session.flush()


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def create_user(
    session: Session,
    username: str,
    roles: list[str],
    *,
    password: str | None = None,
    display_name: str = "",
) -> tuple[User, str]:
    """Create a local account; returns the user and its (possibly generated) password."""
    if not USERNAME_RE.match(username):
        raise InvalidRequest(
            "a user name is 1-128 letters, digits, '.', '_', '@' or '-'", param="username"
        )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidRequest(f"a user named {username!r} already exists", param="username")
    password = password or generate_password()
    check_password_policy(password)
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        roles=_roles_named(session, roles),
    )
    session.add(user)
    session.flush()
    return user, password


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters", param="password"
        )


def check_login(session: Session, username: str, password: str) -> User | None:
    """The user if the name and password match an active local account, else None."""
    user = session.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password):
        if user is not None:
            user.failed_logins += 1
        return None
    assert user is not None
    if not user.is_active:
        return None
    user.failed_logins = 0
    user.last_login_at = utcnow()
    return user


def _roles_named(session: Session, names: list[str]) -> list[Role]:
    roles = list(session.scalars(select(Role).where(Role.name.in_(names))))
    missing = sorted(set(names) - {role.name for role in roles})
    if missing:
        known = ", ".join(sorted(session.scalars(select(Role.name))))
        raise InvalidRequest(f"unknown role {missing[0]!r} (known: {known})", param="role")
    return roles
