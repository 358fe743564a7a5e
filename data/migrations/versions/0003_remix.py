"""remix: the saved edit manifest of a user's track (its history stays in editoperation)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "remix",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("track_id", sa.Uuid(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["track_id"], ["track.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "track_id", name="uq_remix_user_track"),
    )
    with op.batch_alter_table("remix", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_remix_track_id"), ["track_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_remix_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("remix", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remix_user_id"))
        batch_op.drop_index(batch_op.f("ix_remix_track_id"))
    op.drop_table("remix")
