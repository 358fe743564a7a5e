"""What an analysis job reads: a track's audio or one of its stems, owned by the user asking.

The API resolves the source before it enqueues a job (so a missing or foreign track answers 404 and a
track still waiting for its audio answers 409 at once), and the worker resolves it again when the job
runs, because the track or stem may have been deleted in between.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from core import tracks
from core.errors import InvalidInput, NotFound
from data.models import Stem, Track


@dataclass(frozen=True)
class AudioSource:
    """The audio to analyse: ``path`` is relative to the uploads dir, as the database stores it."""

    track: Track
    stem: Stem | None
    path: str

    @property
    def label(self) -> str:
        """How the source is named in messages: "the track" or "the drums stem"."""
        return f"the {self.stem.stem_type} stem" if self.stem else "the track"


async def audio_source(session: AsyncSession, user_id: uuid.UUID, *, track_id: uuid.UUID | None = None,
                       stem_id: uuid.UUID | None = None) -> AudioSource:
    """The user's track (its audio) or stem (its file); exactly one of the two ids is given.

    Someone else's track or stem is reported exactly like a missing one (``NotFound``); a track
    whose audio has not arrived yet (a Spotify import not downloaded, a download still running)
    raises ``Conflict`` with code ``audio_not_ready``.
    """
    if (track_id is None) == (stem_id is None):
        message = "Give either track_id or stem_id"
        raise InvalidInput(message, details={"track_id": message, "stem_id": message})
    if stem_id is not None:
        stem = await session.get(Stem, stem_id)
        if stem is None or stem.user_id != user_id:
            raise NotFound("stem")
        track = await session.get(Track, stem.track_id)
        if track is None or track.user_id != user_id:
            raise NotFound("stem")
        return AudioSource(track, stem, stem.path)
    assert track_id is not None
    track = await tracks.track_with_audio(session, user_id, track_id, "analyse")
    return AudioSource(track, None, track.audio_path)
