"""Stored stems: the rows a separation job leaves, and finding them again for their owner.

A separation writes its files to ``stems/<job_id>/`` and records one ``Stem`` row per file, all in one
transaction when the job's work is done. A track may be separated several times (another model,
another engine); "the track's stems" are those of its newest *completed* processing job, so a job
that was cancelled or failed after its rows were written never hides a good earlier result.

A preview job separates only a window of the track (``Stem.preview_start``/``preview_end``). Its stems are
kept apart: they never count as the track's stems (the editor, the ZIP and the library's "separated" use
full stems only); ``latest_preview`` finds the newest ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import update
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound
from data.files import public_url
from data.models import Job, Stem, Track


def record(stem: Stem) -> dict[str, Any]:
    """A stem as the API lists it (JSON-ready): the processing job's ``stems`` and ``job:completed``. A preview's
    stem adds ``preview``: ``{"start", "end"}`` seconds (full stems keep the contract's shape, without it)."""
    out = {
        "id": str(stem.id),
        "track_id": str(stem.track_id),
        "job_id": str(stem.job_id) if stem.job_id else None,
        "stem_type": stem.stem_type,
        "format": stem.format,
        "size": stem.size,
        "engine": stem.engine,
        "model": stem.model,
        "url": public_url(stem.path),
        "download_url": f"/export/stem/{stem.id}",
        # As pydantic writes datetimes, so job:completed and GET /api/processing/job/:id agree to the byte.
        "created_at": stem.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if stem.is_preview:
        out["preview"] = {"start": stem.preview_start, "end": stem.preview_end}
    return out


async def replace_job_stems(session: AsyncSession, *, user_id: uuid.UUID, track_id: uuid.UUID, job_id: uuid.UUID,
                            engine: str, model: str, files: Sequence[tuple[str, str, str, int]],
                            preview: tuple[float, float] | None = None) -> list[Stem]:
    """Store the stems of one job: ``files`` holds (stem_type, relative path, format, size) each; ``preview``
    the (start, end) seconds of the track a preview job separated.

    Rows an earlier attempt of the same job left are replaced, so a retried job never lists a stem twice.
    """
    await session.exec(delete(Stem).where(col(Stem.job_id) == job_id))  # type: ignore[call-overload]
    start, end = preview if preview is not None else (None, None)
    rows = [Stem(user_id=user_id, track_id=track_id, job_id=job_id, stem_type=stem_type, path=path, format=fmt,
                 size=size, engine=engine, model=model, preview_start=start, preview_end=end)
            for stem_type, path, fmt, size in files]
    session.add_all(rows)
    if rows and preview is None:  # the library's "separated" (Track.has_stems), in the same transaction
        await session.exec(update(Track).where(col(Track.id) == track_id)  # type: ignore[call-overload]
                           .values(has_stems=True).execution_options(synchronize_session=False))
    await session.commit()
    return rows


async def get_stem(session: AsyncSession, user_id: uuid.UUID, stem_id: uuid.UUID) -> Stem:
    """The user's stem, or ``NotFound`` (someone else's stem is reported like a missing one)."""
    stem = await session.get(Stem, stem_id)
    if stem is None or stem.user_id != user_id:
        raise NotFound("stem")
    return stem


async def latest_stems(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> list[Stem]:
    """The full stems of the track's newest completed processing job (empty when it has none)."""
    return await _newest_job_stems(session, user_id, track_id, preview=False)


async def latest_preview(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> list[Stem]:
    """The stems of the track's newest completed preview job (empty when it has none)."""
    return await _newest_job_stems(session, user_id, track_id, preview=True)


async def _newest_job_stems(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID, *,
                            preview: bool) -> list[Stem]:
    kind = col(Stem.preview_start).is_not(None) if preview else col(Stem.preview_start).is_(None)
    newest = (await session.exec(
        select(Job.id)
        .where(Job.user_id == user_id, Job.track_id == track_id, Job.kind == "processing", Job.status == "completed")
        .where(col(Job.id).in_(select(Stem.job_id).where(Stem.track_id == track_id, kind)))
        .order_by(col(Job.finished_at).desc(), col(Job.created_at).desc(), col(Job.id).desc())
        .limit(1)
    )).first()
    if newest is None:
        return []
    rows = await session.exec(select(Stem).where(Stem.job_id == newest, Stem.user_id == user_id)
                              .order_by(col(Stem.created_at), col(Stem.stem_type)))
    return list(rows.all())
