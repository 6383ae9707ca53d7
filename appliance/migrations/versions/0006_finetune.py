"""fine-tunes: datasets, records, runs and the per-alias lock

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:58:09.377643
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finetune_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetune_datasets")),
        sa.UniqueConstraint("alias", "version", name="uq_finetune_datasets_version"),
    )
    with op.batch_alter_table("finetune_datasets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finetune_datasets_alias"), ["alias"], unique=False)

    op.create_table(
        "finetune_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("base_model", sa.String(length=128), nullable=True),
        sa.Column("adapter", sa.String(length=128), nullable=True),
        sa.Column("high_water", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Double(), nullable=True),
        sa.Column("eta_s", sa.Double(), nullable=True),
        sa.Column("tokens_per_s", sa.Double(), nullable=True),
        sa.Column("resumed_from", sa.Integer(), nullable=True),
        sa.Column("losses", sa.JSON(), nullable=False),
        sa.Column("data_report", sa.JSON(), nullable=False),
        sa.Column("gate_report", sa.JSON(), nullable=False),
        sa.Column("source_loss", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetune_runs")),
        sa.UniqueConstraint("alias", "version", name="uq_finetune_runs_version"),
    )
    with op.batch_alter_table("finetune_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finetune_runs_alias"), ["alias"], unique=False)
        batch_op.create_index(batch_op.f("ix_finetune_runs_status"), ["status"], unique=False)

    op.create_table(
        "finetune_locks",
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["finetune_runs.id"],
            name=op.f("fk_finetune_locks_run_id_finetune_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alias", name=op.f("pk_finetune_locks")),
    )
    op.create_table(
        "finetune_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["finetune_datasets.id"],
            name=op.f("fk_finetune_records_dataset_id_finetune_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetune_records")),
    )
    with op.batch_alter_table("finetune_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finetune_records_alias"), ["alias"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_finetune_records_dataset_id"), ["dataset_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_finetune_records_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("finetune_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finetune_records_expires_at"))
        batch_op.drop_index(batch_op.f("ix_finetune_records_dataset_id"))
        batch_op.drop_index(batch_op.f("ix_finetune_records_alias"))

    op.drop_table("finetune_records")
    op.drop_table("finetune_locks")
    with op.batch_alter_table("finetune_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finetune_runs_status"))
        batch_op.drop_index(batch_op.f("ix_finetune_runs_alias"))

    op.drop_table("finetune_runs")
    with op.batch_alter_table("finetune_datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finetune_datasets_alias"))

    op.drop_table("finetune_datasets")
