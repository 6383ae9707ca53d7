"""Fine-tunes: versioned datasets, their records, runs, and the one-run-per-alias lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, UTCDateTime, utcnow

# A run's life: queued → preparing → training → evaluating → rejected | canary,
# then canary → promoted | rolled_back; promoted → superseded | rolled_back.
# skipped and failed end a run early, with a reason.
RUN_ACTIVE = ("queued", "preparing", "training", "evaluating")
RUN_SERVING = ("canary", "promoted")


class FinetuneDataset(Base):
    """One import of records for an alias: its version, source and what was dropped."""

    __tablename__ = "finetune_datasets"
    __table_args__ = (UniqueConstraint("alias", "version", name="uq_finetune_datasets_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int]
    source: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class FinetuneRecord(Base):
    """One desensitized chat record; imported (with its dataset) or captured from the API."""

    __tablename__ = "finetune_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), index=True)
    dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("finetune_datasets.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Captured records go when their retention ends; imported ones with their dataset.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class FinetuneRun(Base):
    __tablename__ = "finetune_runs"
    __table_args__ = (UniqueConstraint("alias", "version", name="uq_finetune_runs_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16), default="cli")
    requested_by: Mapped[str | None] = mapped_column(String(128))
    task_id: Mapped[str | None] = mapped_column(String(64))
    base_model: Mapped[str | None] = mapped_column(String(128))
    # The adapter's name in the vault and on the upstreams (vLLM's lora_name).
    adapter: Mapped[str | None] = mapped_column(String(128))
    high_water: Mapped[int | None]  # the newest record id this run trained on
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int] = mapped_column(default=0)
    loss: Mapped[float | None]
    eta_s: Mapped[float | None]
    tokens_per_s: Mapped[float | None]
    resumed_from: Mapped[int | None]
    losses: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[step, loss], ...]
    data_report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    gate_report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_loss: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def label(self) -> str:
        """The version as the alias's targets name it: ``v3``."""
        return f"v{self.version}"


class FinetuneLock(Base):
    """At most one run per alias: a lease in the database, so it outlives the worker that
    took it; a dead worker's lease runs out and the same run (or a new one) takes over."""

    __tablename__ = "finetune_locks"

    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("finetune_runs.id", ondelete="CASCADE"))
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
