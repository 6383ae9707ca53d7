"""TOTP second factor (RFC 6238, 30-second steps, 6 digits) for local accounts.

The seed is sealed per user (``appliance.auth.sealing``). A code is accepted for the
current step or one step either side (clock drift), and only for a step later than the
last one accepted, so a code seen over a shoulder cannot be replayed.
"""

from __future__ import annotations

import hmac
import re
import time

import pyotp

from appliance.auth.sealing import seal, unseal
from appliance.models import User, utcnow

ISSUER = "Appliance"
STEP_S = 30
DRIFT_STEPS = 1
CODE_RE = re.compile(r"^\d{6}$")
KEY_PURPOSE = "totp-secret"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI authenticator apps read (from a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def is_enrolled(user: User) -> bool:
    return user.totp_secret is not None and user.totp_enabled_at is not None


def enrol(user: User, secret: str, code: str, key: bytes, now: float | None = None) -> bool:
    """Store ``secret`` for ``user`` if ``code`` proves the authenticator holds it."""
    step = _matching_step(secret, code, None, now)
    if step is None:
        return False
    user.totp_secret = seal(key, secret, _bound_to(user))
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    return True


def verify(user: User, code: str, key: bytes, now: float | None = None) -> bool:
    """Check a code of an enrolled user; a used step is remembered (no replay)."""
    if user.totp_secret is None:
        return False
    secret = unseal(key, user.totp_secret, _bound_to(user))
    step = _matching_step(secret, code, user.totp_last_step, now)
    if step is None:
        return False
    user.totp_last_step = step
    return True


def reset(user: User) -> None:
    """Forget the user's authenticator: the next sign-in enrols a new one."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None


def _matching_step(secret: str, code: str, last_step: int | None, now: float | None) -> int | None:
    code = code.replace(" ", "")
    if not CODE_RE.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    current = int((time.time() if now is None else now) // STEP_S)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * STEP_S), code):
            return step
    return None


def _bound_to(user: User) -> str:
    return f"user:{user.id}:totp"
