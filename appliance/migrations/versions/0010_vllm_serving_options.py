"""models: how vLLM serves each (tool and reasoning parsers, chat template, context
length, structured-output backend), checked by appliance.upstream.vllm_options

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = (
    "tool_call_parser",
    "enable_auto_tool_choice",
    "reasoning_parser",
    "chat_template",
    "max_model_len",
    "guided_decoding_backend",
)


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tool_call_parser", sa.String(length=64), nullable=True))
        # Registered models keep serving as before: no flag.
        batch_op.add_column(
            sa.Column(
                "enable_auto_tool_choice", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("reasoning_parser", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("chat_template", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("max_model_len", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("guided_decoding_backend", sa.String(length=32), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
