"""Accounts: creation, roles, the password policy and password logins with lockout."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.passwords import generate_password, hash_password, verify_password
from appliance.auth.rbac import RbacPolicy
from appliance.errors import InvalidRequest, NotFound
from appliance.models import Role, User, utcnow

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 work stays bounded whatever is posted
MIN_DISTINCT_CHARACTERS = 5
# The most common passwords of 12+ characters in public breach lists.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678910",
        "password1234",
        "password12345",
        "passwordpassword",
        "qwertyuiopasdfgh",
        "qwertyuiop123",
        "1q2w3e4r5t6y",
        "iloveyou1234",
        "administrator",
        "changeme1234",
        "welcome12345",
        "letmein12345",
    }
)


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
    while password is None:
        candidate = generate_password()
        password = candidate if password_problem(candidate, username) is None else None
    check_password_policy(password, username)
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        password_changed_at=utcnow(),
        roles=_roles_named(session, roles),
    )
    session.add(user)
    session.flush()
    return user, password


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why ``password`` is refused by the policy, or None if it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"a password has at most {MAX_PASSWORD_LENGTH} characters"
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return f"a password needs at least {MIN_DISTINCT_CHARACTERS} different characters"
    if password.lower() in COMMON_PASSWORDS:
        return "this password is one of the most common ones; choose another"
    if username and len(username) >= 3 and username.lower() in password.lower():
        return "a password must not contain the user name"
    return None


def check_password_policy(password: str, username: str | None = None) -> None:
    problem = password_problem(password, username)
    if problem:
        raise InvalidRequest(problem, param="password")


def set_password(user: User, password: str) -> None:
    check_password_policy(password, user.username)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None


@dataclass(frozen=True)
class LoginAttempt:
    """The outcome of a password login; ``reason`` says why it failed (for the audit log only)."""

    user: User | None
    reason: str | None = None  # invalid_credentials | locked | inactive
    locked_now: bool = False  # this failure locked the account

    @property
    def ok(self) -> bool:
        return self.reason is None


def password_login(
    session: Session,
    username: str,
    password: str,
    *,
    max_failures: int,
    lockout: timedelta,
    now: datetime | None = None,
) -> LoginAttempt:
    """Check a password login; ``max_failures`` in a row lock the account for ``lockout``.

    A locked account is refused without looking at the password, so guessing goes on
    no faster than the lockout allows. The caller shows one message for every failure.
    """
    now = now or utcnow()
    user = session.scalar(select(User).where(User.username == username))
    if user is not None and user.locked_until is not None and user.locked_until > now:
        return LoginAttempt(user, "locked")
    if not verify_password(user.password_hash if user else None, password):
        if user is None:
            return LoginAttempt(None, "invalid_credentials")
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.failed_logins = 0
            user.locked_until = now + lockout
            return LoginAttempt(user, "invalid_credentials", locked_now=True)
        return LoginAttempt(user, "invalid_credentials")
    if not user or not user.is_active:
        return LoginAttempt(user, "inactive")
    user.failed_logins = 0
    user.locked_until = None
    return LoginAttempt(user)


def note_second_factor_failure(
    user: User, *, max_failures: int, lockout: timedelta, now: datetime | None = None
) -> bool:
    """Count a wrong TOTP code like a wrong password; True if it locked the account."""
    user.failed_logins += 1
    if user.failed_logins >= max_failures:
        user.failed_logins = 0
        user.locked_until = (now or utcnow()) + lockout
        return True
    return False


def set_roles(session: Session, user: User, roles: list[str]) -> bool:
    """Give ``user`` exactly ``roles``; True if that changed anything."""
    if sorted(set(roles)) == user.role_names:
        return False
    user.roles = _roles_named(session, sorted(set(roles)))
    return True


def deactivate(user: User, reason: str) -> bool:
    """Deactivate (reason "admin" or "sso_mapping"); its sessions end at their next request."""
    if not user.is_active:
        return False
    user.is_active = False
    user.deactivated_reason = reason
    return True


def activate(user: User) -> bool:
    if user.is_active:
        return False
    user.is_active = True
    user.deactivated_reason = None
    user.failed_logins = 0
    user.locked_until = None
    return True


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
