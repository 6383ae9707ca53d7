"""API keys: ``sk-app-<8-char id><43-char secret>``; only a SHA-256 hash is stored.

The keys carry 256 bits of randomness, so a fast hash is the right choice (a slow
password hash would only add latency to every request); the id prefix finds the row
and the hashes are compared in constant time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import AuthenticationFailed, InvalidRequest, NotFound
from appliance.models import ApiKey, User, utcnow

KEY_PREFIX = "sk-app-"
ID_CHARS = 8
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_plaintext() -> str:
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(ID_CHARS))
    return f"{KEY_PREFIX}{key_id}{secrets.token_urlsafe(32)}"


def create_api_key(
    session: Session,
    user: User,
    name: str,
    *,
    models: str = "*",
    expires_days: int | None = None,
) -> NewKey:
    """Create a key for ``user``; the plaintext is returned once and never stored."""
    if not name.strip():
        raise InvalidRequest("a key needs a name", param="name")
    if expires_days is not None and expires_days < 1:
        raise InvalidRequest("expiry must be at least one day", param="expires_days")
    plaintext = _new_plaintext()
    key = ApiKey(
        prefix=plaintext[: len(KEY_PREFIX) + ID_CHARS],
        secret_hash=_hash(plaintext),
        name=name.strip(),
        user=user,
        user_id=user.id,
        models=models,
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(key)
    session.flush()
    return NewKey(key=key, plaintext=plaintext)


def authenticate_api_key(session: Session, presented: str, now: datetime | None = None) -> ApiKey:
    """The active key matching ``presented``, or AuthenticationFailed saying why not."""
    now = now or utcnow()
    if not presented.startswith(KEY_PREFIX) or len(presented) < len(KEY_PREFIX) + ID_CHARS + 16:
        raise AuthenticationFailed("Incorrect API key provided.")
    prefix = presented[: len(KEY_PREFIX) + ID_CHARS]
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(presented)):
        raise AuthenticationFailed("Incorrect API key provided.")
    if key.revoked_at is not None:
        raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
    if not key.user.is_active:
        raise AuthenticationFailed(
            "The account of this API key is disabled.", code="account_disabled"
        )
    return key


def revoke_api_key(session: Session, prefix: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        raise NotFound(f"no API key with id {prefix!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def globs_allow(globs: str, model_name: str) -> bool:
    """Whether a comma-separated list of globs (a key's model scope) matches the model."""
    return any(fnmatch.fnmatchcase(model_name, g.strip()) for g in globs.split(",") if g.strip())
