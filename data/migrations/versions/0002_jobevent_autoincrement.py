"""jobevent.seq never reused on SQLite (AUTOINCREMENT)

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-25

Without AUTOINCREMENT SQLite hands out max(rowid)+1, so deleting the newest events (deleting a track
deletes its jobs' events) would give the next event a seq the EventHub has already passed. PostgreSQL's
sequence never goes back, so there is nothing to change there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("jobevent", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("jobevent", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
