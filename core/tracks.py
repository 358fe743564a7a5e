"""The user's track library: listing, editing, deleting, and adding uploaded audio.

Every query is scoped to its owner; a track of someone else is reported exactly
like a track that does not exist.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import bindparam, func, or_
from sqlalchemy import select as core_select
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audio_io
from core.errors import Conflict, InvalidAudio, NotFound, PayloadTooLarge
from data.db import fetch_one
from data.files import FileStore, safe_filename
from data.models import AnalysisResult, EditOperation, Job, JobEvent, Remix, Stem, Track, utcnow
from data.pagination import Page

COPY_CHUNK = 1024 * 1024


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_tracks(
    session: AsyncSession, user_id: uuid.UUID, *, page: int = 1, page_size: int = 20, search: str = ""
) -> Page[Track]:
    where = [Track.user_id == user_id]
    if search.strip():
        pattern = f"%{_escape_like(search.strip().lower())}%"
        where.append(
            or_(
                func.lower(col(Track.title)).like(pattern, escape="\\"),
                func.lower(col(Track.artist)).like(pattern, escape="\\"),
            )
        )
    total = (await session.exec(select(func.count()).select_from(Track).where(*where))).one()
    rows = await session.exec(
        select(Track)
        .where(*where)
        .order_by(col(Track.created_at).desc(), col(Track.id))
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return Page(list(rows.all()), page, page_size, int(total))


async def get_track(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> Track:
    track = await session.get(Track, track_id)
    if track is None or track.user_id != user_id:
        raise NotFound("track")
    return track


# Built once: composing the WHERE clause costs more per request than running the cached statement.
_TRACK_OF_OWNER = core_select(Track.__table__).where(
    col(Track.id) == bindparam("track_id"), col(Track.user_id) == bindparam("user_id")
)


async def read_track(user_id: uuid.UUID, track_id: uuid.UUID) -> Any:
    """The track's row, columns named as ``Track``'s fields, for a read-only answer: one Core query
    with the ownership check in its WHERE clause, no ORM session or instance (``data.db.fetch_one``
    runs it inline on SQLite)."""
    row = await fetch_one(_TRACK_OF_OWNER, {"track_id": track_id, "user_id": user_id})
    if row is None:
        raise NotFound("track")
    return row


async def track_with_audio(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID, action: str) -> Track:
    """The user's track, with its audio on disk: ``NotFound`` for a missing or foreign track, ``Conflict``
    ``audio_not_ready`` while the audio has not arrived (a Spotify import not downloaded yet, a download
    still running or failed). ``action`` completes the sentence: "download it first, then {action} it"."""
    track = await get_track(session, user_id, track_id)
    if not track.audio_path:
        raise Conflict(f"The track's audio is not there yet; download it first, then {action} it",
                       code="audio_not_ready")
    return track


async def update_track(
    session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID, changes: dict[str, str]
) -> Track:
    track = await get_track(session, user_id, track_id)
    for field in ("title", "artist", "album"):
        if field in changes and changes[field] is not None:
            setattr(track, field, changes[field].strip())
    track.updated_at = utcnow()
    session.add(track)
    await session.commit()
    return track


async def delete_track(session: AsyncSession, store: FileStore, user_id: uuid.UUID, track_id: uuid.UUID) -> None:
    """Remove a track with everything derived from it: stems, jobs, results and files."""
    track = await get_track(session, user_id, track_id)
    job_ids = list((await session.exec(select(Job.id).where(Job.track_id == track.id))).all())
    stem_paths = list((await session.exec(select(Stem.path).where(Stem.track_id == track.id))).all())
    # Children first, so this works whether or not the backend enforces ON DELETE CASCADE.
    for model in (AnalysisResult, EditOperation, Remix, Stem):
        await session.exec(delete(model).where(col(model.track_id) == track.id))
    if job_ids:
        await session.exec(delete(JobEvent).where(col(JobEvent.job_id).in_(job_ids)))
        await session.exec(delete(Job).where(col(Job.id).in_(job_ids)))
    await session.delete(track)
    await session.commit()
    # Files go after the commit: a failed commit must not leave rows pointing at deleted files.
    for path in stem_paths:
        store.remove_file(path)
    for job_id in job_ids:
        store.remove_tree(store.job_dir(job_id))
    store.remove_tree(store.track_dir(track_id))


def copy_limited(src: BinaryIO, dest: Path, max_bytes: int) -> int:
    """Copy a stream to disk, refusing it (and deleting the partial copy) past max_bytes."""
    written = 0
    try:
        with dest.open("wb") as out:
            while chunk := src.read(COPY_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise PayloadTooLarge(f"The file is larger than the {max_bytes // (1024 * 1024)} MB limit")
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return written


def import_upload(
    store: FileStore,
    src: BinaryIO,
    filename: str,
    *,
    max_bytes: int,
    track_id: uuid.UUID,
    title: str,
    artist: str,
) -> tuple[str, audio_io.AudioInfo, int]:
    """Store an uploaded file under the track's folder after checking that it decodes.

    Blocking (disk and ffmpeg); the caller runs it in a thread. Returns the relative
    path, the audio facts and the size in bytes.
    """
    store.ensure()
    staging = Path(tempfile.mkdtemp(prefix="upload-", dir=store.root))
    try:
        tmp = staging / "incoming"
        size = copy_limited(src, tmp, max_bytes)
        if size == 0:
            raise InvalidAudio("The file is empty")
        info = audio_io.probe(tmp)
        name = f"{artist} - {title}" if artist else title
        final = store.track_dir(track_id) / safe_filename(name or Path(filename).stem, info.format)
        FileStore.replace_atomically(tmp, final)
        return store.relative(final), info, size
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def add_uploaded_file(
    session: AsyncSession,
    store: FileStore,
    user_id: uuid.UUID,
    src: BinaryIO,
    filename: str,
    *,
    max_bytes: int,
    title: str = "",
    artist: str = "",
    album: str = "",
) -> Track:
    """A new track whose audio is the uploaded file, ready for separation and analysis at once.

    Artist and title default to what an "Artist - Title.ext" file name says.
    """
    guessed_artist, guessed_title = title_from_filename(filename)
    title, artist = title.strip() or guessed_title, artist.strip() or guessed_artist
    track_id = uuid.uuid4()
    rel_path, info, size = await asyncio.to_thread(
        import_upload, store, src, filename, max_bytes=max_bytes, track_id=track_id, title=title, artist=artist
    )
    track = Track(
        id=track_id,
        user_id=user_id,
        title=title,
        artist=artist,
        album=album.strip(),
        duration=round(info.duration),
        audio_path=rel_path,
        audio_format=info.format,
        file_size=size,
        sample_rate=info.sample_rate,
        channels=info.channels,
    )
    session.add(track)
    try:
        await session.commit()
    except BaseException:
        store.remove_tree(store.track_dir(track_id))
        raise
    return track


def title_from_filename(filename: str) -> tuple[str, str]:
    """Guess (artist, title) from "Artist - Title.ext"; people name their files that way."""
    stem = Path(filename or "").stem.strip() or "Untitled"
    if " - " in stem:
        artist, title = stem.split(" - ", 1)
        return artist.strip(), title.strip()
    return "", stem
