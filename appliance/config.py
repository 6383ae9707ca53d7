"""Settings: ``APPLIANCE_*`` environment variables over one YAML file, validated once.

``APPLIANCE_HOME`` names the home directory. It holds ``appliance.yaml`` (optional),
the SQLite database of the embedded default, ``keys/`` (0700, key files 0600), the
vault, models and logs, so several independent appliances can live on one machine.

Nothing here runs at import time: entry points call :func:`load_settings` once and
pass the result down.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from appliance.errors import ConfigError

CONFIG_FILE_NAME = "appliance.yaml"
DEFAULT_HOME = Path("~/.appliance")
TEST_PREFIX = "APPLIANCE_TEST_"  # the test suite's own variables, not settings
# A browser's Origin: scheme, host (a name, IPv4 or [IPv6]) and port; nothing else.
ORIGIN_RE = re.compile(
    r"https?://(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


def _shipped_policies() -> Path:
    """policies/ of a source checkout, else the copy a wheel installs under share/."""
    checkout = Path(__file__).resolve().parent.parent / "policies"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "appliance" / "policies"


SHIPPED_POLICIES = _shipped_policies()


class Settings(BaseSettings):
    """Everything the appliance can be told. Defaults are the embedded default."""

    model_config = SettingsConfigDict(env_prefix="APPLIANCE_", extra="forbid", frozen=True)

    home: Path = Field(default=DEFAULT_HOME, description="home directory of this appliance")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the home directory"
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; default: SQLAlchemy transport on SQLite"
    )
    result_backend: str | None = Field(default=None, description="Celery result backend")
    secret_key: SecretStr | None = Field(
        default=None, description="portal session signing key; default: derived from the master key"
    )
    master_key_file: Path | None = Field(default=None, description="default: HOME/keys/master.key")
    engine_key: SecretStr | None = Field(
        default=None,
        description="the credential the gateway sends the engines (vLLM's --api-key); default: "
        "HOME/keys/engine.key, made by `appliance init`, rotated by `appliance engine rotate-key`",
    )
    policies_dir: Path | None = Field(
        default=None, description="default: HOME/policies if present, else the shipped policies/"
    )

    bind_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    portal_port: int = Field(default=8001, ge=1, le=65535)
    engine_base_port: int = Field(default=8100, ge=1, le=65535)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    proxy_hops: int = Field(
        default=0,
        ge=0,
        le=5,
        description="reverse proxies in front (nginx: 1); their X-Forwarded-For/-Proto are trusted",
    )
    upstream_connect_timeout_s: float = Field(default=3.0, gt=0)
    upstream_read_timeout_s: float = Field(default=300.0, gt=0)
    upstream_idle_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="a kept-alive upstream connection idle longer is not reused: keep it below "
        "every upstream's keep-alive (the built-in engine's 2 s, vLLM's 5 s)",
    )
    health_interval_s: float = Field(default=15.0, gt=0)
    policy_check_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=5,
        description="how often each process looks for an edited policy file (live within 5 s)",
    )
    heartbeat_interval_s: float = Field(
        default=10.0, gt=0, description="how often the Celery worker and beat report they are alive"
    )
    worker_stale_after_s: float = Field(
        default=45.0,  # a dead beat or worker is restarted within a minute
        gt=0,
        description="a worker or beat heartbeat older than this is stale: /readyz and the portal "
        "say degraded, and `appliance serve` restarts the worker (with its beat)",
    )

    redis_url: str | None = Field(
        default=None,
        description="Redis for rate limits shared by every worker; unset: per host (a file)",
    )
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="browser origins (scheme://host[:port], exact, comma-separated) allowed "
        "to call /v1 (CORS); empty: none",
    )
    jwt_ttl_s: int = Field(default=900, ge=60, le=3600, description="service-account JWT life")
    oidc_issuer: str | None = Field(default=None, description="enterprise IdP issuer URL")
    oidc_audience: str | None = Field(default=None, description="audience API tokens must carry")
    oidc_jwks_url: str | None = Field(
        default=None, description="default: from the discovery document"
    )
    oidc_roles_claim: str = Field(default="groups", description="claim mapped to roles")
    upstream_failure_threshold: int = Field(default=3, ge=1, description="failures before ejection")
    upstream_cooldown_s: float = Field(
        default=10.0, gt=0, description="ejection time before a retry"
    )
    metrics_port: int = Field(default=9100, ge=1, le=65535, description="internal Prometheus port")

    vault_dir: Path | None = Field(
        default=None, description="sealed models (the model vault); default: HOME/vault"
    )
    vault_key_provider: Literal["file", "env"] = Field(
        default="file", description="where the vault's key-encryption keys come from"
    )
    vault_key_dir: Path | None = Field(
        default=None, description="file provider: 0600 KEK files; default: HOME/keys/vault"
    )
    vault_kek_env: str = Field(
        default="MODEL_VAULT_KEK",
        description="env provider: variable of hex KEKs, comma-separated, current first",
    )
    vault_chunk_size: int = Field(
        default=4 * 1024 * 1024,
        ge=4096,
        le=256 * 1024 * 1024,
        multiple_of=4096,
        description="plaintext bytes per encrypted chunk of newly imported files",
    )
    vault_tmpfs_dir: Path = Field(
        default=Path("/dev/shm"),  # noqa: S108 (a tmpfs on purpose: weights stay in memory)
        description="tmpfs where `engine serve --vault` unseals models",
    )
    finetune_dir: Path | None = Field(
        default=None, description="fine-tune work (checkpoints); default: HOME/finetune"
    )
    finetune_lease_s: float = Field(
        default=600.0, ge=5, description="a training worker's lease on its alias, renewed per step"
    )

    elasticsearch_url: str | None = Field(
        default=None, description="Elasticsearch for the audit trail; unset: not shipped there"
    )
    elasticsearch_api_key: SecretStr | None = Field(default=None, description="its API key")
    elasticsearch_username: str | None = Field(
        default=None, description="or a user (with elasticsearch_password) for basic auth"
    )
    elasticsearch_password: SecretStr | None = Field(default=None, description="that user's")
    elasticsearch_ca_certs: Path | None = Field(default=None, description="its CA bundle")
    audit_data_stream: str = Field(
        default="logs-appliance.audit-default",
        pattern=r"^[a-z0-9][a-z0-9._]*-[a-z0-9._]+-[a-z0-9._]+$",
        description="data stream the audit events go to (type-dataset-namespace)",
    )
    audit_retention_days: int = Field(
        default=400, ge=1, description="Elasticsearch deletes audit indices this much older"
    )
    audit_jsonl_file: Path | None = Field(
        default=None, description="ECS JSON lines for Filebeat; default: HOME/logs/audit.jsonl"
    )
    audit_api_calls: bool = Field(
        default=True,
        description="one audit event per API call; false only to measure what that costs",
    )
    audit_seal_interval_s: float = Field(default=2.0, gt=0, description="how often to seal")
    audit_ship_interval_s: float = Field(default=5.0, gt=0, description="how often to ship")
    audit_ship_batch: int = Field(default=1000, ge=1, le=50_000, description="events per bulk")
    audit_checkpoint_interval_s: float = Field(
        default=300.0, gt=0, description="how often a signed checkpoint of the chain is made"
    )

    session_cookie_secure: bool = Field(
        default=False, description="set true when the portal is served over TLS"
    )
    session_idle_timeout_min: int = Field(default=30, ge=1)
    # Failed portal sign-ins (appliance.auth.throttle). How many an account is allowed
    # and the lockout length are on the Settings page.
    login_throttle: Literal["throttle", "lock"] = Field(
        default="throttle",
        description="after an account's allowed failed sign-ins: back off (throttle) or "
        "lock it for the Settings page's lockout length (lock, the old behaviour)",
    )
    login_backoff_max_s: int = Field(
        default=60, ge=1, le=3600, description="throttle: the longest wait of an account"
    )
    login_source_threshold: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="failed sign-ins from one address before it backs off; 0: no such limit",
    )
    login_source_backoff_max_s: int = Field(
        default=300, ge=1, le=86_400, description="the longest wait of one address"
    )
    log_level: str = "INFO"

    @field_validator(
        "home", "master_key_file", "policies_dir", "vault_dir", "vault_key_dir", "vault_tmpfs_dir",
        "finetune_dir", "elasticsearch_ca_certs", "audit_jsonl_file",
        mode="after",
    )  # fmt: skip
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().absolute() if value is not None else None

    @field_validator("vault_kek_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("must be an environment variable name")
        if value.upper().startswith("APPLIANCE_"):
            raise ValueError("must not start with APPLIANCE_ (those names are settings)")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (use `openssl rand -hex 32`)")
        return value

    @field_validator("engine_key")
    @classmethod
    def _engine_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[!-~]{32,512}", value.get_secret_value()):
            raise ValueError(
                "must be 32 to 512 printable characters without spaces (`openssl rand -hex 32`)"
            )
        return value

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("must be a JSON list or comma-separated origins") from None
        elif isinstance(value, str):
            value = [part for part in re.split(r"[\s,]+", value) if part]
        if not isinstance(value, list | tuple):
            return value
        origins = []
        for origin in value:
            if not isinstance(origin, str) or not ORIGIN_RE.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path, no wildcard"
                )
            origins.append(origin.lower())
        return tuple(dict.fromkeys(origins))

    @field_validator("database_url", "broker_url", "result_backend", "redis_url")
    @classmethod
    def _has_scheme(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a URL such as postgresql+psycopg://host/db")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        if self.api_port == self.portal_port:
            raise ValueError("api_port and portal_port must differ")
        return self

    @model_validator(mode="after")
    def _stale_after_two_heartbeats(self) -> Settings:
        # One late heartbeat must not make a worker stale (and get it restarted).
        if self.worker_stale_after_s < 2 * self.heartbeat_interval_s:
            raise ValueError("worker_stale_after_s must be at least twice heartbeat_interval_s")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments (tests) over the environment over the YAML file; the
        # YAML file's values arrive as init arguments from load_settings().
        return (init_settings, env_settings)

    # Derived locations -------------------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def effective_vault_dir(self) -> Path:
        return self.vault_dir or self.home / "vault"

    @property
    def effective_finetune_dir(self) -> Path:
        return self.finetune_dir or self.home / "finetune"

    @property
    def effective_vault_key_dir(self) -> Path:
        return self.vault_key_dir or self.keys_dir / "vault"

    @property
    def effective_audit_jsonl_file(self) -> Path:
        return self.audit_jsonl_file or self.log_dir / "audit.jsonl"

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.keys_dir / "master.key"

    @property
    def engine_key_path(self) -> Path:
        """The engine key's file (unused while the setting engine_key is set)."""
        return self.keys_dir / "engine.key"

    @property
    def effective_policies_dir(self) -> Path:
        if self.policies_dir is not None:
            return self.policies_dir
        in_home = self.home / "policies"
        return in_home if in_home.is_dir() else SHIPPED_POLICIES

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'appliance.db'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home / 'broker.db'}"

    @property
    def effective_result_backend(self) -> str | None:
        if self.result_backend:
            return self.result_backend
        if self.effective_broker_url.startswith(("redis://", "rediss://")):
            return self.effective_broker_url
        return None

    def public_view(self) -> dict[str, Any]:
        """The effective settings with every secret hidden, for `appliance config check`."""
        view: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********"
            elif isinstance(value, str) and "://" in value:
                value = _hide_url_password(value)
            elif isinstance(value, tuple):
                value = list(value)
            view[name] = str(value) if isinstance(value, Path) else value
        view["database_url"] = _hide_url_password(self.effective_database_url)
        view["broker_url"] = _hide_url_password(self.effective_broker_url)
        view["master_key_file"] = str(self.master_key_path)
        view["policies_dir"] = str(self.effective_policies_dir)
        view["vault_dir"] = str(self.effective_vault_dir)
        view["vault_key_dir"] = str(self.effective_vault_key_dir)
        return view


def _hide_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings once, or raise ConfigError naming the bad setting."""
    home_raw = overrides.get("home") or os.environ.get("APPLIANCE_HOME") or str(DEFAULT_HOME)
    home = Path(home_raw).expanduser()
    file_values = _read_config_file(home / CONFIG_FILE_NAME)
    env_names = {f"APPLIANCE_{name.upper()}" for name in Settings.model_fields}
    # The environment wins over the file: drop file values the environment sets.
    merged = {k: v for k, v in file_values.items() if f"APPLIANCE_{k.upper()}" not in os.environ}
    merged.update(overrides)
    merged.setdefault("home", home)
    unknown_env = sorted(
        k
        for k in os.environ
        if k.startswith("APPLIANCE_") and k not in env_names and not k.startswith(TEST_PREFIX)
    )
    if unknown_env:
        raise ConfigError(f"unknown setting in the environment: {', '.join(unknown_env)}")
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        # The context mark is where the broken construct starts; the problem mark may be EOF.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of setting names to values")
    return {str(k): v for k, v in data.items()}


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"invalid setting {name} (APPLIANCE_{name.upper()}): {message}")
    return "; ".join(lines)
