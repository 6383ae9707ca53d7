"""Accounts: creation, roles, the password policy and password logins (throttled or locked)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth import throttle
from appliance.auth.passwords import generate_password, hash_password, verify_password
from appliance.auth.rbac import RbacPolicy
from appliance.auth.throttle import LoginPolicy
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
    """The outcome of a password login; ``reason`` says why it failed (for the audit log only).

    Reasons: invalid_credentials, inactive, locked (mode lock), throttled (the account's
    back-off), source_throttled (the address's back-off).
    """

    user: User | None
    reason: str | None = None
    locked_now: bool = False  # this failure locked the account (mode lock)
    wait_s: int = 0  # after this failure the account (or mode lock: it) waits this long
    source_wait_s: int = 0  # and its source address this long

    @property
    def ok(self) -> bool:
        return self.reason is None


def password_login(
    session: Session,
    username: str,
    password: str,
    *,
    policy: LoginPolicy,
    source: str | None = None,
    now: datetime | None = None,
) -> LoginAttempt:
    """Check a password login under ``policy`` (``appliance.auth.throttle``).

    The password hash is computed for every attempt, of an unknown name (against a dummy
    hash), a wrong password, a locked, backing-off or inactive account or a throttled
    address alike, so the time of the answer tells nothing; the caller shows one message
    for every failure. An attempt refused while its account or address waits is not
    counted (it cannot extend the wait), and the account's row is locked from the check
    to the count, so parallel guesses cannot all slip through between two failures.
    """
    now = now or throttle.clock()
    user = session.scalar(select(User).where(User.username == username).with_for_update())
    correct = verify_password(user.password_hash if user else None, password)
    source_key = throttle.source_key(source)
    if throttle.source_blocked(session, source_key, now):
        return LoginAttempt(user, "source_throttled")
    if user is not None and throttle.password_blocked(session, user, source, now):
        return LoginAttempt(user, "locked" if policy.mode == throttle.LOCK else "throttled")
    if not correct or user is None:
        source_wait = throttle.note_source_failure(session, source_key, policy, now)
        if user is None:
            return LoginAttempt(None, "invalid_credentials", source_wait_s=source_wait)
        locked_now, wait = throttle.note_password_failure(session, user, source, policy, now)
        return LoginAttempt(
            user,
            "invalid_credentials",
            locked_now=locked_now,
            wait_s=wait,
            source_wait_s=source_wait,
        )
    if not user.is_active:
        return LoginAttempt(user, "inactive")
    throttle.note_password_success(session, user, source)
    return LoginAttempt(user)


def note_second_factor_failure(
    user: User, *, policy: LoginPolicy, now: datetime | None = None
) -> tuple[bool, int]:
    """Count a wrong TOTP code like a wrong password; (locked now, seconds to wait)."""
    return throttle.note_account_failure(user, policy, now or throttle.clock())


def set_roles(session: Session, user: User, roles: list[str]) -> bool:
    """Give ``user`` exactly ``roles``; True if that changed anything."""
    if sorted(set(roles)) == user.role_names:
        return False
    user.roles = _roles_named(session, sorted(set(roles)))
    return True


def deactivate(user: User, reason: str) -> bool:
    """Deactivate (reason "admin" or "sso_mapping").

    The portal ends the user's sessions where it deactivates; any other session of an
    inactive user ends at its next request (``appliance.portal.auth``).
    """
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
