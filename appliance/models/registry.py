"""The model registry: models the API serves and the upstream servers that serve them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.models.base import Base, UTCDateTime, utcnow

BUILTIN = "builtin"  # served by the built-in CPU engine from a local directory
OPENAI = "openai"  # served by existing OpenAI-compatible servers (vLLM in production)


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(String(1024))
    # The name the upstream knows the model by (vLLM's --served-model-name).
    served_name: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # How vLLM serves it (appliance.upstream.vllm_options, the table that checks them):
    # --tool-call-parser, --enable-auto-tool-choice, --reasoning-parser, --chat-template,
    # --max-model-len, --guided-decoding-backend. None (False): the flag is not given.
    tool_call_parser: Mapped[str | None] = mapped_column(String(64), default=None)
    enable_auto_tool_choice: Mapped[bool] = mapped_column(default=False, server_default=false())
    reasoning_parser: Mapped[str | None] = mapped_column(String(64), default=None)
    chat_template: Mapped[str | None] = mapped_column(String(1024), default=None)
    max_model_len: Mapped[int | None] = mapped_column(default=None)
    guided_decoding_backend: Mapped[str | None] = mapped_column(String(32), default=None)

    upstreams: Mapped[list[Upstream]] = relationship(
        back_populates="model",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="Upstream.id",
    )


class Upstream(Base):
    __tablename__ = "upstreams"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(1024))
    # The upstream's own key, sealed (appliance.upstream.credentials); None: the engine key.
    credential: Mapped[str | None] = mapped_column(String(1024), default=None)
    healthy: Mapped[bool | None] = mapped_column(default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(512))

    model: Mapped[Model] = relationship(back_populates="upstreams")


class ModelAlias(Base):
    """A public model name routed to weighted (base model, LoRA adapter) targets (canaries)."""

    __tablename__ = "model_aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    targets: Mapped[list[AliasTarget]] = relationship(
        back_populates="alias",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="AliasTarget.id",
    )


class AliasTarget(Base):
    __tablename__ = "alias_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    alias_id: Mapped[int] = mapped_column(
        ForeignKey("model_aliases.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    # The LoRA adapter's name as the upstream serves it (vLLM --lora-modules NAME=PATH).
    adapter: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64), default="")
    weight: Mapped[int] = mapped_column(default=100)

    alias: Mapped[ModelAlias] = relationship(back_populates="targets")
    model: Mapped[Model] = relationship(lazy="joined")
