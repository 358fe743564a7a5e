"""track library summary: tempo, key, energy, analysed_at and has_stems on the track, indexed, backfilled

The library sorts and filters by these (core/tracks.list_tracks); kept on the track they need no join
or per-row query. The backfill takes, for each track, the newest measured value of each field from
its own analyses (stem_id null) and whether a completed separation stored stems.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXED = ("tempo", "musical_key", "energy", "analysed_at", "has_stems")
# As core/analysis/record.COLUMNS's first four (a migration does not import the app's code).
_SCALARS = ("tempo", "key", "key_confidence", "energy")


def upgrade() -> None:
    with op.batch_alter_table("track", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tempo", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("musical_key", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("key_confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("energy", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("has_stems", sa.Boolean(), nullable=False, server_default=sa.false()))
        for name in _INDEXED:
            batch_op.create_index(batch_op.f(f"ix_track_{name}"), [name], unique=False)
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    track = sa.table("track", sa.column("id", sa.Uuid()), sa.column("tempo", sa.Float()),
                     sa.column("musical_key", sa.String()), sa.column("key_confidence", sa.Float()),
                     sa.column("energy", sa.Float()), sa.column("analysed_at", sa.DateTime(timezone=True)),
                     sa.column("has_stems", sa.Boolean()))
    analysis = sa.table("analysisresult", sa.column("track_id", sa.Uuid()), sa.column("stem_id", sa.Uuid()),
                        sa.column("id", sa.Uuid()), sa.column("created_at", sa.DateTime(timezone=True)),
                        *(sa.column(name, sa.Float()) for name in ("tempo", "key_confidence", "energy")),
                        sa.column("key", sa.String()), sa.column("data", sa.JSON()))
    stem = sa.table("stem", sa.column("track_id", sa.Uuid()), sa.column("job_id", sa.Uuid()))
    job = sa.table("job", sa.column("id", sa.Uuid()), sa.column("kind", sa.String()), sa.column("status", sa.String()))

    summaries: dict[Any, dict[str, Any]] = {}
    rows = bind.execute(
        sa.select(analysis).where(analysis.c.stem_id.is_(None))
        .order_by(analysis.c.created_at, analysis.c.id)
    ).all()
    for row in rows:  # oldest first: each newer analysis overwrites the fields it measured
        present = (row.data or {}).get("scalar_fields", list(_SCALARS))
        summary = summaries.setdefault(row.track_id, {})
        for name in _SCALARS:
            if name in present:
                summary["musical_key" if name == "key" else name] = getattr(row, name)
        summary["analysed_at"] = row.created_at
    for track_id, values in summaries.items():
        bind.execute(sa.update(track).where(track.c.id == track_id).values(**values))

    separated = sa.exists(
        sa.select(sa.literal(1)).select_from(stem.join(job, stem.c.job_id == job.c.id))
        .where(stem.c.track_id == track.c.id, job.c.kind == "processing", job.c.status == "completed")
    )
    bind.execute(sa.update(track).where(separated).values(has_stems=True))


def downgrade() -> None:
    with op.batch_alter_table("track", schema=None) as batch_op:
        for name in reversed(_INDEXED):
            batch_op.drop_index(batch_op.f(f"ix_track_{name}"))
        for name in ("has_stems", "analysed_at", "energy", "key_confidence", "musical_key", "tempo"):
            batch_op.drop_column(name)
