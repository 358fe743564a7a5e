"""Stored analysis results: saving one, and finding the newest for a track or a stem.

Every analysis adds a row (a re-analysis with other features does not overwrite an earlier one);
readers want the newest. A track's own results are those without a stem: the analysis of its
drums stem is not the analysis of the track.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.analysis import record
from core.errors import NotFound
from data.models import AnalysisResult, Track


async def save(session: AsyncSession, result: dict[str, Any], *, user_id: uuid.UUID, track_id: uuid.UUID,
               stem_id: uuid.UUID | None, job_id: uuid.UUID | None) -> AnalysisResult:
    """Store ``result`` (as ``core.analysis.analyze`` returned it): typed columns plus JSON."""
    row = record.to_row(result, user_id=user_id, track_id=track_id, stem_id=stem_id, job_id=job_id)
    session.add(row)
    if stem_id is None:  # the library's summary on the track, in the same transaction
        track = await session.get(Track, track_id)
        if track is not None:
            record.apply_summary(track, row)
            session.add(track)
    await session.commit()
    return row


async def latest(session: AsyncSession, user_id: uuid.UUID, *, track_id: uuid.UUID | None = None,
                 stem_id: uuid.UUID | None = None) -> AnalysisResult:
    """The newest result of the user's track (``track_id``) or stem (``stem_id``), or ``NotFound``."""
    query = select(AnalysisResult).where(AnalysisResult.user_id == user_id)
    if stem_id is not None:
        query = query.where(AnalysisResult.stem_id == stem_id)
    else:
        query = query.where(AnalysisResult.track_id == track_id, col(AnalysisResult.stem_id).is_(None))
    # created_at ties (same clock tick) fall back to the id, so the answer is stable.
    query = query.order_by(col(AnalysisResult.created_at).desc(), col(AnalysisResult.id).desc()).limit(1)
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound("analysis")
    return row


async def latest_tempo_range(session: AsyncSession, user_id: uuid.UUID,
                             track_id: uuid.UUID) -> tuple[float, float] | None:
    """The tempo range (min, max BPM) the track's newest analysis was asked to count its beat in, or None (never
    analysed, or analysed without one): what a re-analysis from the pages keeps, so a half-time choice sticks."""
    try:
        row = await latest(session, user_id, track_id=track_id)
    except NotFound:
        return None
    value = (row.data or {}).get("tempo_range")
    return (float(value[0]), float(value[1])) if isinstance(value, list) and len(value) == 2 else None
