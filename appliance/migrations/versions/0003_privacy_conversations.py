"""privacy conversations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 22:18:12.341074
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=160), nullable=False),
        sa.Column("conversation", sa.String(length=128), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_conversations")),
        sa.UniqueConstraint("owner", "conversation", name=op.f("uq_privacy_conversations_owner")),
    )
    with op.batch_alter_table("privacy_conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_privacy_conversations_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("privacy_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_conversations_expires_at"))

    op.drop_table("privacy_conversations")
