"""Who may read a stored file: the owner of the track or job folder it lives in.

Files live under ``downloads/<track_id>/`` (downloads and uploads) and ``stems/<job_id>/``
(separation results). The folder's id names the row that owns it, so one query answers
"is this user's"; any other file must be recorded as a track's audio or a stem, of this user.
Anything else, including someone else's file, is reported as not found.
"""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound
from data.models import Job, Stem, Track


def _folder_id(parts: tuple[str, ...]) -> uuid.UUID | None:
    if len(parts) < 3:
        return None
    try:
        return uuid.UUID(parts[1])
    except ValueError:
        return None


async def check_readable(session: AsyncSession, user_id: uuid.UUID, relative: str) -> None:
    """Return quietly when ``user_id`` may read the stored file ``relative``; NotFound otherwise."""
    parts = PurePosixPath(relative).parts
    folder = _folder_id(parts)
    owner: uuid.UUID | None = None
    if folder is not None and parts[0] == "downloads":
        track = await session.get(Track, folder)
        owner = track.user_id if track else None
    elif folder is not None and parts[0] == "stems":
        job = await session.get(Job, folder)
        owner = job.user_id if job else None
    if owner is None:
        # Not in a folder that names its owner: only files recorded in a row are served.
        for query in (select(Track.user_id).where(Track.audio_path == relative),
                      select(Stem.user_id).where(Stem.path == relative)):
            owner = (await session.exec(query)).first()
            if owner is not None:
                break
    if owner != user_id:
        raise NotFound("file")
