"""Settings an admin changes on the Settings page: the SSO client, lockout and sessions.

They live in one database row (``portal_settings``) so every portal process sees a change
at once; values are validated by :class:`PortalSettings` before they are written, and the
SSO client secret is sealed under a key derived from the master key, never shown back.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from appliance.auth.sealing import seal, unseal
from appliance.models import PortalSetting, utcnow

ROW_ID = 1
KEY_PURPOSE = "portal-settings"
SECRET_BINDING = "portal_settings:sso_client_secret"  # noqa: S105 (a label)


class PortalSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sso_enabled: bool = False
    sso_display_name: str = Field(default="Single sign-on", min_length=1, max_length=64)
    sso_issuer: str = Field(default="", max_length=255)
    sso_client_id: str = Field(default="", max_length=255)
    sso_scopes: str = Field(default="openid profile email groups", max_length=255)
    lockout_threshold: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=1440)
    session_absolute_hours: int = Field(default=12, ge=1, le=168)

    @field_validator("sso_issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("must use https (plain http only on this machine, for tests)")
        return value

    @field_validator("sso_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        scopes = value.split()
        if "openid" not in scopes:
            raise ValueError("must include openid")
        return " ".join(dict.fromkeys(scopes))

    @property
    def lockout(self) -> timedelta:
        return timedelta(minutes=self.lockout_minutes)

    @property
    def session_absolute_s(self) -> int:
        return self.session_absolute_hours * 3600


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(session: Session) -> PortalSettings:
    row = session.get(PortalSetting, ROW_ID)
    return PortalSettings.model_validate(row.values if row else {})


def has_client_secret(session: Session) -> bool:
    row = session.get(PortalSetting, ROW_ID)
    return bool(row and row.sealed_client_secret)


def client_secret(session: Session, key: bytes) -> str | None:
    row = session.get(PortalSetting, ROW_ID)
    if row is None or not row.sealed_client_secret:
        return None
    return unseal(key, row.sealed_client_secret, SECRET_BINDING)


def validate(values: dict[str, Any]) -> tuple[PortalSettings | None, dict[str, str]]:
    """The settings, or the errors of each field by name."""
    try:
        return PortalSettings.model_validate(values), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(name, error["msg"].removeprefix("Value error, "))
        return None, errors


def save(
    session: Session,
    settings: PortalSettings,
    *,
    actor: str,
    key: bytes,
    new_client_secret: str | None = None,
) -> list[str]:
    """Write the settings (and a new client secret if given); the names of what changed."""
    row = session.get(PortalSetting, ROW_ID)
    if row is None:
        row = PortalSetting(id=ROW_ID, values={})
        session.add(row)
    before = PortalSettings.model_validate(row.values or {}).model_dump()
    after = settings.model_dump()
    changed = sorted(name for name in after if before.get(name) != after[name])
    row.values = after
    if new_client_secret:
        row.sealed_client_secret = seal(key, new_client_secret, SECRET_BINDING)
        changed.append("sso_client_secret")
    row.updated_at = utcnow()
    row.updated_by = actor
    session.flush()
    return changed
