"""The user's track library: listing, editing, deleting, and adding uploaded audio.

Every query is scoped to its owner; a track of someone else is reported exactly
like a track that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import and_, bindparam, case, func, or_, update
from sqlalchemy import select as core_select
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audio_io, jobs
from core.analysis.camelot import KEY_NAMES_IN_WHEEL_ORDER, camelot_code, key_names_for
from core.daw.peaks import CACHE_DIR as PEAKS_CACHE_DIR
from core.errors import Conflict, InvalidAudio, InvalidInput, NotFound, PayloadTooLarge
from core.events import EventLog
from data.db import fetch_one
from data.files import FileStore, UnsafePath, safe_filename
from data.models import AnalysisResult, EditOperation, Job, JobEvent, Remix, Stem, Track, utcnow
from data.pagination import Page

COPY_CHUNK = 1024 * 1024


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


SORTS = ("created_at", "title", "artist", "duration", "bpm", "key", "energy")
ORDERS = ("asc", "desc")
STATUSES = ("pending", "active", "ready", "separated", "analysed", "failed")
ACTIVE_JOB_STATUSES = ("queued", "downloading", "processing")
# BPM bounds compare at the precision the library shows tempos (whole BPM, rounded): half a BPM either side.
BPM_PRECISION = 0.5


@dataclass(frozen=True)
class Activity:
    """What a track's newest job is doing (or did): the library's "activity" column."""

    job_id: uuid.UUID
    kind: str
    status: str
    progress: int
    message: str
    error: str | None


@dataclass(frozen=True)
class TrackRow:
    """One row of the library: the ``Track`` with its summary, read the same way by the API and the pages.

    ``tempo`` (BPM), ``key`` ("A minor"), ``camelot`` ("8A"), ``key_confidence`` and ``energy`` are the
    newest measured values from the track's own analyses, ``analysed`` says whether it has any,
    ``has_stems`` whether a separation stored stems, ``activity`` its newest job (None: never had one).
    Any other attribute is the track's (``row.title``, ``row.audio_path``), so code written for a list of
    ``Track`` keeps working.
    """

    track: Track
    activity: Activity | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.track, name)

    @property
    def tempo(self) -> float | None:
        return self.track.tempo

    @property
    def key(self) -> str | None:
        return self.track.musical_key

    @property
    def camelot(self) -> str | None:
        return camelot_code(self.track.musical_key)

    @property
    def key_confidence(self) -> float | None:
        return self.track.key_confidence

    @property
    def energy(self) -> float | None:
        return self.track.energy

    @property
    def has_stems(self) -> bool:
        return bool(self.track.has_stems)

    @property
    def analysed(self) -> bool:
        return self.track.analysed_at is not None


def _invalid(param: str, message: str) -> InvalidInput:
    return InvalidInput(f"Invalid request: {param}: {message}", details={param: message})


def _keys(param: str, value: str, *, compatible: bool) -> list[str]:
    try:
        return key_names_for(value, compatible=compatible)
    except InvalidInput:
        raise _invalid(param, "expected a key such as 'A minor', 'F# major' or a Camelot code such as '8A'") from None


def _key_rank() -> Any:
    """The Camelot position of the track's key (1A=0, 1B=1, 2A=2 ... 12B=23); NULL for no key."""
    return case({name: rank for rank, name in enumerate(KEY_NAMES_IN_WHEEL_ORDER)}, value=col(Track.musical_key),
                else_=None)


def _newest_job_status() -> Any:
    return (select(Job.status).where(col(Job.track_id) == col(Track.id))
            .order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(1).scalar_subquery())


def _status_condition(status: str) -> Any:
    if status == "pending":
        return col(Track.audio_path).is_(None)
    if status == "ready":
        return and_(col(Track.audio_path).is_not(None), col(Track.has_stems).is_(False))
    if status == "separated":
        return col(Track.has_stems).is_(True)
    if status == "analysed":
        return col(Track.analysed_at).is_not(None)
    if status == "failed":
        return _newest_job_status() == "failed"
    raise _invalid("status", f"expected one of {', '.join(STATUSES)}")


def _sort_terms(sort: str, order: str | None) -> list[Any]:
    """ORDER BY terms: tracks without a value last (either direction), then newest first, then the id."""
    if sort not in SORTS:
        raise _invalid("sort", f"expected one of {', '.join(SORTS)}")
    if order is not None and order not in ORDERS:
        raise _invalid("order", "expected asc or desc")
    descending = (order or ("desc" if sort == "created_at" else "asc")) == "desc"
    if sort == "created_at":
        created = col(Track.created_at)
        return [created.desc() if descending else created.asc(), col(Track.id)]
    value: Any
    if sort in ("title", "artist"):
        column = col(getattr(Track, sort))
        value, missing = func.lower(column), column == ""
    else:
        value = {"duration": col(Track.duration), "bpm": col(Track.tempo), "energy": col(Track.energy),
                 "key": _key_rank()}[sort]
        missing = value.is_(None)
    return [case((missing, 1), else_=0), value.desc() if descending else value.asc(),
            col(Track.created_at).desc(), col(Track.id)]


async def _activities(session: AsyncSession, user_id: uuid.UUID, track_ids: list[uuid.UUID]) -> dict[Any, Activity]:
    """The newest job of each of these tracks, in one query."""
    if not track_ids:
        return {}
    newest = func.row_number().over(partition_by=col(Job.track_id),
                                    order_by=(col(Job.created_at).desc(), col(Job.id).desc())).label("rn")
    ranked = (core_select(Job.id, Job.track_id, Job.kind, Job.status, Job.progress, Job.message, Job.error, newest)
              .where(col(Job.user_id) == user_id, col(Job.track_id).in_(track_ids)).subquery())
    rows = await session.execute(core_select(ranked).where(ranked.c.rn == 1))
    return {row.track_id: Activity(row.id, row.kind, row.status, row.progress, row.message, row.error)
            for row in rows}


async def list_tracks(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    page: int = 1,
    page_size: int = 20,
    search: str = "",
    sort: str = "created_at",
    order: str | None = None,
    status: str | None = None,
    bpm_min: float | None = None,
    bpm_max: float | None = None,
    key: str | None = None,
    compatible_with: str | None = None,
) -> Page[TrackRow]:
    """One page of the user's library as ``TrackRow``s, sorted and filtered in SQL.

    ``sort``: ``created_at`` (default), ``title``, ``artist``, ``duration``, ``bpm``, ``key`` (Camelot wheel
    order, 1A 1B 2A ... 12B) or ``energy``; ``order`` ``asc``/``desc`` (default: desc for created_at, asc
    otherwise). Tracks without the value sort last either way; ties go newest first.
    Filters (all must hold): ``search`` in title or artist; ``status`` (``STATUSES``: pending = no audio
    yet, active = a job queued or running, ready = audio but no stems, separated = has stems, analysed,
    failed = its newest job failed); ``bpm_min``/``bpm_max`` (inclusive, at the whole-BPM precision lists
    show: a track at 127.94 BPM, shown as 128, is within ``bpm_min=128``; half a BPM either side,
    ``BPM_PRECISION``); ``key`` (a key name or Camelot code: that key); ``compatible_with`` (the key and its
    Camelot neighbours, ``compatible_codes``).
    Raises ``InvalidInput`` whose ``details`` name the parameter for a value that is not one.

    Two queries for a page (rows with the total count, then the page's newest jobs), one more when the page
    lies past the end or for ``status="active"`` (the busy tracks' ids); each condition uses an indexed
    column of ``track`` or ``job``.
    """
    where: list[Any] = [col(Track.user_id) == user_id]
    if search.strip():
        pattern = f"%{_escape_like(search.strip().lower())}%"
        where.append(
            or_(
                func.lower(col(Track.title)).like(pattern, escape="\\"),
                func.lower(col(Track.artist)).like(pattern, escape="\\"),
            )
        )
    if status == "active":
        # Few jobs are queued or running at any time: their track ids first (index on job.status), so the
        # listing needs no per-track look-up whatever plan the database picks.
        busy = (await session.exec(
            select(Job.track_id).where(col(Job.user_id) == user_id, col(Job.status).in_(ACTIVE_JOB_STATUSES))
            .distinct()
        )).all()
        where.append(col(Track.id).in_([t for t in busy if t is not None]))
    elif status is not None:
        where.append(_status_condition(status))
    for param, bound in (("bpm_min", bpm_min), ("bpm_max", bpm_max)):
        if bound is not None and not (isinstance(bound, int | float) and math.isfinite(bound) and bound >= 0):
            raise _invalid(param, "expected a number of beats per minute, 0 or more")
    if bpm_min is not None and bpm_max is not None and bpm_min > bpm_max:
        raise _invalid("bpm_min", "must not be greater than bpm_max")
    if bpm_min is not None:
        where.append(col(Track.tempo) >= bpm_min - BPM_PRECISION)
    if bpm_max is not None:
        where.append(col(Track.tempo) < bpm_max + BPM_PRECISION)
    if key is not None:
        where.append(col(Track.musical_key).in_(_keys("key", key, compatible=False)))
    if compatible_with is not None:
        where.append(col(Track.musical_key).in_(_keys("compatible_with", compatible_with, compatible=True)))
    order_by = _sort_terms(sort, order)

    # Two statements rather than a count(*) OVER () column: with the count beside the rows the database
    # must sort every matching row; alone, ORDER BY ... LIMIT keeps only the top page (a heap of page_size)
    # and the count is an index scan. About 2x faster on a 5,000-track library (bench/pages.py).
    total = int((await session.exec(select(func.count()).select_from(Track).where(*where))).one())
    result = await session.exec(
        select(Track).where(*where).order_by(*order_by)  # type: ignore[call-overload]
        .offset((page - 1) * page_size).limit(page_size)
    )
    items = list(result.all()) if total else []
    activities = await _activities(session, user_id, [t.id for t in items])
    return Page([TrackRow(t, activities.get(t.id)) for t in items], page, page_size, total)


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


async def _cancel_active_jobs(session: AsyncSession, events: EventLog | None, user_id: uuid.UUID,
                              track_ids: list[uuid.UUID]) -> None:
    """Cancel the tracks' queued and running jobs, committed before anything is deleted: a queued job then
    never starts, and a running one stops at its next progress point (its worker's conditional update
    finds the job no longer running, core/jobs.py) and removes its partial files. With ``events`` each
    cancellation is announced like ``core.jobs.cancel_job``'s."""
    active = list((await session.exec(
        select(Job.id).where(Job.user_id == user_id, col(Job.track_id).in_(track_ids),
                             col(Job.status).in_(ACTIVE_JOB_STATUSES))
    )).all())
    for job_id in active:
        if events is not None:
            with contextlib.suppress(Conflict):  # it finished meanwhile
                await jobs.cancel_job(session, events, user_id, job_id)
            continue
        now = utcnow()
        await session.exec(  # type: ignore[call-overload]
            update(Job).where(col(Job.id) == job_id, col(Job.status).in_(ACTIVE_JOB_STATUSES))
            .values(status=jobs.CANCELLED, message="Cancelled", finished_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    if active and events is None:
        await session.commit()


def _remove_audio_file(store: FileStore, relative: str | None) -> None:
    """A stored file and its waveform-peaks cache (``<dir>/.peaks/<name>.*``, core/daw/peaks.py)."""
    if not relative:
        return
    store.remove_file(relative)
    try:
        path = store.resolve(relative)
    except UnsafePath:
        return
    for cached in path.parent.joinpath(PEAKS_CACHE_DIR).glob(f"{glob_escape(path.name)}.*"):
        cached.unlink(missing_ok=True)


async def delete_tracks(session: AsyncSession, store: FileStore, user_id: uuid.UUID, track_ids: Iterable[uuid.UUID],
                        *, events: EventLog | None = None) -> int:
    """Remove the user's tracks among ``track_ids`` with everything derived from them; returns how many.

    Their queued and running jobs are cancelled first (``_cancel_active_jobs``); then, in one transaction,
    their analyses, saved remixes and edit history, stems, jobs with their events, and the tracks; then
    their files: the audio, the stems, and the waveform-peaks caches next to them. Ids of other users'
    tracks, or of none, are skipped (nothing of another user is read or touched).
    """
    wanted = list(dict.fromkeys(track_ids))
    if not wanted:
        return 0
    owned = list((await session.exec(
        select(Track.id, Track.audio_path).where(Track.user_id == user_id, col(Track.id).in_(wanted))
    )).all())
    ids = [row[0] for row in owned]
    if not ids:
        return 0
    await _cancel_active_jobs(session, events, user_id, ids)
    job_ids = list((await session.exec(select(Job.id).where(col(Job.track_id).in_(ids)))).all())
    stem_paths = list((await session.exec(select(Stem.path).where(col(Stem.track_id).in_(ids)))).all())
    # Children first, so this works whether or not the backend enforces ON DELETE CASCADE.
    for model in (AnalysisResult, EditOperation, Remix, Stem):
        await session.exec(delete(model).where(col(model.track_id).in_(ids)))  # type: ignore[call-overload]
    if job_ids:
        await session.exec(delete(JobEvent).where(col(JobEvent.job_id).in_(job_ids)))  # type: ignore[call-overload]
        await session.exec(delete(Job).where(col(Job.id).in_(job_ids)))  # type: ignore[call-overload]
    await session.exec(delete(Track).where(col(Track.id).in_(ids), col(Track.user_id) == user_id))  # type: ignore[call-overload]
    await session.commit()
    # Files go after the commit: a failed commit must not leave rows pointing at deleted files.
    for path in stem_paths:
        _remove_audio_file(store, path)
    for _, audio_path in owned:
        _remove_audio_file(store, audio_path)
    for job_id in job_ids:
        store.remove_tree(store.job_dir(job_id))
    for track_id in ids:
        store.remove_tree(store.track_dir(track_id))
    return len(ids)


async def delete_track(session: AsyncSession, store: FileStore, user_id: uuid.UUID, track_id: uuid.UUID, *,
                       events: EventLog | None = None) -> None:
    """Remove a track with everything derived from it (``delete_tracks``); ``NotFound`` for a missing or
    foreign track."""
    await get_track(session, user_id, track_id)
    if await delete_tracks(session, store, user_id, [track_id], events=events) != 1:
        raise NotFound("track")  # deleted by a concurrent request


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
