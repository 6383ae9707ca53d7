"""The model registry: models the API serves and the upstream servers that serve them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
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
    healthy: Mapped[bool | None] = mapped_column(default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(512))

    model: Mapped[Model] = relationship(back_populates="upstreams")
