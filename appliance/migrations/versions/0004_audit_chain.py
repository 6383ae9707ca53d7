"""audit chain

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 22:29:35.743895
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_pos", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "chain_pos", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_checkpoints_chain_pos"), ["chain_pos"], unique=False
        )

    op.create_table(
        "audit_ship_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column(
            "chain_pos", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_ship_errors")),
    )
    with op.batch_alter_table("audit_ship_errors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_ship_errors_event_id"), ["event_id"], unique=False
        )

    op.create_table(
        "audit_sink_cursors",
        sa.Column("sink", sa.String(length=32), nullable=False),
        sa.Column("last_pos", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("sink", name=op.f("pk_audit_sink_cursors")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "chain_pos", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(sa.Column("chain_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_audit_events_unsealed",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("chain_pos IS NULL"),
            sqlite_where=sa.text("chain_pos IS NULL"),
        )
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_chain_pos"), ["chain_pos"])

    # The chain's one head row, there from the start: sealers only ever lock and move it.
    head = sa.table(
        "audit_chain_head",
        sa.column("id", sa.Integer),
        sa.column("last_pos", sa.BigInteger),
        sa.column("last_hash", sa.String),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        head,
        [{"id": 1, "last_pos": 0, "last_hash": "0" * 64, "updated_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_chain_pos"), type_="unique")
        batch_op.drop_index(
            "ix_audit_events_unsealed",
            postgresql_where=sa.text("chain_pos IS NULL"),
            sqlite_where=sa.text("chain_pos IS NULL"),
        )
        batch_op.drop_column("chain_hash")
        batch_op.drop_column("chain_pos")

    op.drop_table("audit_sink_cursors")
    with op.batch_alter_table("audit_ship_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_ship_errors_event_id"))

    op.drop_table("audit_ship_errors")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_chain_pos"))

    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_head")
