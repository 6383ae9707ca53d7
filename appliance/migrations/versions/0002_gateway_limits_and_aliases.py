"""gateway limits and aliases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:24:53.911902
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_aliases")),
        sa.UniqueConstraint("name", name=op.f("uq_model_aliases_name")),
    )
    op.create_table(
        "alias_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("adapter", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alias_id"],
            ["model_aliases.id"],
            name=op.f("fk_alias_targets_alias_id_model_aliases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_alias_targets_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_targets")),
    )
    with op.batch_alter_table("alias_targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alias_targets_alias_id"), ["alias_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alias_targets_model_id"), ["model_id"], unique=False)

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requests_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tokens_per_day", sa.Integer(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("tokens_per_day")
        batch_op.drop_column("requests_per_minute")

    with op.batch_alter_table("alias_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alias_targets_model_id"))
        batch_op.drop_index(batch_op.f("ix_alias_targets_alias_id"))

    op.drop_table("alias_targets")
    op.drop_table("model_aliases")
