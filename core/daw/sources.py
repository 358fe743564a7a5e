"""The audio behind a manifest's stems: the track's stored stems, checked to belong to the track.

Someone else's track is ``NotFound`` (404) like a missing one; a ``stem_id`` that is not one of this
track's stems is a validation error on that field (422), as the DAW contract says.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.daw.manifest import Manifest, ManifestInvalid
from core.daw.mixdown import StemAudio, stem_audio
from core.errors import InvalidAudio
from core.stem_export import stem_path
from data.files import FileStore
from data.models import Stem


async def track_stems(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> dict[uuid.UUID, Stem]:
    """Every stored full stem of the user's track (of any of its separations; previews are not), by id."""
    rows = await session.exec(select(Stem).where(Stem.track_id == track_id, Stem.user_id == user_id,
                                                 col(Stem.preview_start).is_(None))
                              .order_by(col(Stem.created_at), col(Stem.stem_type)))
    return {row.id: row for row in rows.all()}


def stored_stem_audio(store: FileStore, stem: Stem) -> StemAudio:
    """The stem's file as the mixdown reads it; NotFound when the file is gone from the server."""
    return stem_audio(stem_path(store, stem))


def referenced_stems(manifest: Manifest, stems: dict[uuid.UUID, Stem], *, allow_files: bool) -> list[Stem | int]:
    """Per manifest stem: its ``Stem`` row, or its ``file_index`` (only when ``allow_files``).

    Raises ManifestInvalid naming each ``stems[i].stem_id`` that is not a stem of this track, and each
    ``stems[i].file_index`` where uploads are not possible.
    """
    details: dict[str, str] = {}
    out: list[Stem | int] = []
    for index, entry in enumerate(manifest.stems):
        if entry.stem_id is not None:
            row = stems.get(entry.stem_id)
            if row is None:
                details[f"stems[{index}].stem_id"] = "not a stem of this track"
            else:
                out.append(row)
        elif allow_files:
            out.append(int(entry.file_index or 0))
        else:
            details[f"stems[{index}].file_index"] = "a saved remix names stored stems by stem_id"
    if details:
        raise ManifestInvalid(details)
    return out


async def audio_of(store: FileStore, rows: list[Stem]) -> list[StemAudio]:
    """The files of ``rows`` (blocking reads of their headers, off the event loop)."""

    def read() -> list[StemAudio]:
        try:
            return [stored_stem_audio(store, row) for row in rows]
        except InvalidAudio as exc:
            raise InvalidAudio(f"A stored stem cannot be read: {exc.message}") from exc

    return await asyncio.to_thread(read)
