"""stem previews: the window of the track a preview separation covers (both null for full stems)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stem", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preview_start", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("preview_end", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stem", schema=None) as batch_op:
        batch_op.drop_column("preview_end")
        batch_op.drop_column("preview_start")
