"""Slowing down password guessing without handing attackers a way to lock people out.

Two counters of failed sign-ins, each with an exponential back-off once it passes its
threshold: 2^k seconds after the k-th failure beyond it, capped.

- Per account and source (``login_throttles`` rows ``user:<id>@<source>``): after
  ``threshold`` failed passwords for one account from one source, each further attempt
  from there must wait 1, 2, 4 ... seconds, at most ``backoff_max_s`` (60 s by default).
  During the wait even the right password is refused from that source, so guessing goes
  no faster, while the owner signing in from anywhere else is not held up: an attacker's
  failures are no weapon against the account (the outside test's finding).
- Per account, everywhere (``users.failed_logins``, the back-off's end in
  ``users.locked_until``): guesses spread over many sources back off too, from
  ``DISTRIBUTED_FACTOR`` times the threshold on (50 by default), and wrong TOTP codes
  (whoever sends them knows the password) from the threshold on. ``mode="lock"`` is the
  old hard lock instead: ``threshold`` failures lock the account for ``lockout``.
- Per source (``login_throttles``: an IPv4 address, or an IPv6 /64): after
  ``source_threshold`` failures from it, whatever names were tried, the same back-off up
  to ``source_backoff_max_s`` (300 s). One address cannot hammer one account, nor try one
  password on many. Its failures are forgotten after an hour without any. Loopback
  clients are not counted: they are this machine, or a reverse proxy whose hops are not
  configured (``proxy_hops``), which would make every client one source.

An attempt refused during a back-off does not count as a failure (it cannot extend the
wait) and is answered exactly as a wrong password (``appliance.auth.users.password_login``
always computes the password hash).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.models import LoginThrottle, User, utcnow

THROTTLE = "throttle"
LOCK = "lock"
MODES = (THROTTLE, LOCK)
SOURCE_FORGET = timedelta(hours=1)  # a source's failures are forgotten after this quiet time
IPV6_PREFIX = 64  # one IPv6 source: a /64, what one site is usually given
DISTRIBUTED_FACTOR = 10  # failures from many sources that slow the account everywhere


@dataclass(frozen=True)
class LoginPolicy:
    """How failures are answered (the Settings page's threshold and lockout, the settings)."""

    mode: str = THROTTLE
    threshold: int = 5
    lockout: timedelta = timedelta(minutes=15)
    backoff_max_s: int = 60
    source_threshold: int = 20  # 0: no per-source throttle
    source_backoff_max_s: int = 300


def clock() -> datetime:
    """Now, for every decision of the sign-in path (tests move it forward)."""
    return utcnow()


def backoff_s(failures: int, threshold: int, cap_s: int) -> int:
    """The wait after ``failures`` in a row: none below ``threshold``, then 1, 2, 4 ... cap_s."""
    if failures < threshold:
        return 0
    return min(cap_s, 2 ** min(failures - threshold, 30))


# Accounts ---------------------------------------------------------------------------


def account_blocked(user: User, now: datetime) -> bool:
    """Locked (mode lock) or backing off (mode throttle)."""
    return user.locked_until is not None and user.locked_until > now


def note_account_failure(user: User, policy: LoginPolicy, now: datetime) -> tuple[bool, int]:
    """Count one failure (a password or a TOTP code); (locked now, seconds it must wait)."""
    user.failed_logins += 1
    if policy.mode == LOCK:
        if user.failed_logins < policy.threshold:
            return False, 0
        user.failed_logins = 0
        user.locked_until = now + policy.lockout
        return True, int(policy.lockout.total_seconds())
    wait = backoff_s(user.failed_logins, policy.threshold, policy.backoff_max_s)
    if wait:
        user.locked_until = now + timedelta(seconds=wait)
    return False, wait


def note_account_success(user: User) -> None:
    user.failed_logins = 0
    user.locked_until = None


def pair_key(user: User, address: str | None) -> str:
    """The row of one account's failures from one source (loopback addresses included)."""
    return f"user:{user.id}@{_address_key(address, loopback=True) or 'unknown'}"


def password_blocked(session: Session, user: User, address: str | None, now: datetime) -> bool:
    """Whether a password for ``user`` from ``address`` must not be checked now."""
    if account_blocked(user, now):
        return True
    return source_blocked(session, pair_key(user, address), now)


def note_password_failure(
    session: Session, user: User, address: str | None, policy: LoginPolicy, now: datetime
) -> tuple[bool, int]:
    """Count one wrong password for ``user`` from ``address``; (locked now, seconds the
    source must wait). Mode lock: the account's hard lock."""
    if policy.mode == LOCK:
        return note_account_failure(user, policy, now)
    row = _locked_row(session, pair_key(user, address), now)
    if now - row.last_failure_at > SOURCE_FORGET:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    wait = backoff_s(row.failures, policy.threshold, policy.backoff_max_s)
    row.blocked_until = now + timedelta(seconds=wait) if wait else None
    user.failed_logins += 1
    everywhere = backoff_s(
        user.failed_logins, policy.threshold * DISTRIBUTED_FACTOR, policy.backoff_max_s
    )
    if everywhere:
        user.locked_until = now + timedelta(seconds=everywhere)
    session.flush()
    return False, max(wait, everywhere)


def note_password_success(session: Session, user: User, address: str | None) -> None:
    note_account_success(user)
    session.execute(delete(LoginThrottle).where(LoginThrottle.source == pair_key(user, address)))


# Sources ----------------------------------------------------------------------------


def source_key(address: str | None) -> str | None:
    """What one source is: the IPv4 address, the IPv6 /64; None for loopback or unknown."""
    return _address_key(address, loopback=False)


def _address_key(address: str | None, *, loopback: bool) -> str | None:
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback and not loopback:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def source_blocked(session: Session, key: str | None, now: datetime) -> bool:
    if key is None:
        return False
    row = session.get(LoginThrottle, key)
    return row is not None and row.blocked_until is not None and row.blocked_until > now


def note_source_failure(
    session: Session, key: str | None, policy: LoginPolicy, now: datetime
) -> int:
    """Count one failed sign-in from ``key``; the seconds it must now wait."""
    if key is None or policy.source_threshold <= 0:
        return 0
    row = _locked_row(session, key, now)
    if now - row.last_failure_at > SOURCE_FORGET:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    wait = backoff_s(row.failures, policy.source_threshold, policy.source_backoff_max_s)
    row.blocked_until = now + timedelta(seconds=wait) if wait else None
    session.flush()
    return wait


def unlock(session: Session, user: User) -> None:
    """An admin's unlock: the account's failures everywhere and from every source."""
    note_account_success(user)
    session.execute(
        delete(LoginThrottle).where(LoginThrottle.source.startswith(f"user:{user.id}@"))
    )


def purge_sources(session: Session, now: datetime) -> None:
    """Forget sources quiet for long enough (their rows would be reset anyway)."""
    quiet = LoginThrottle.last_failure_at < now - SOURCE_FORGET
    session.execute(delete(LoginThrottle).where(quiet))


def _locked_row(session: Session, key: str, now: datetime) -> LoginThrottle:
    row = session.get(LoginThrottle, key, with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = LoginThrottle(source=key, failures=0, last_failure_at=now)
            session.add(row)
    except IntegrityError:  # another request added it first
        row = session.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
        assert row is not None
    return row
