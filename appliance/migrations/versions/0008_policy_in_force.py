"""policies in force per process (issue 18, item 3)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_in_force",
        sa.Column("process", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_policy_in_force")),
    )
    op.create_index(op.f("ix_policy_in_force_kind"), "policy_in_force", ["kind"])
    op.create_index(op.f("ix_policy_in_force_seen_at"), "policy_in_force", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_policy_in_force_seen_at"), table_name="policy_in_force")
    op.drop_index(op.f("ix_policy_in_force_kind"), table_name="policy_in_force")
    op.drop_table("policy_in_force")
