"""The user's tracks: list, read, edit, delete, upload."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Query, Request, Response, UploadFile

from core import tracks
from core.api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep, api_user, parse_uuid
from core.api.presenters import track_envelope_json, track_out
from core.api.schemas import Envelope, ErrorOut, PageMeta, TrackOut, TrackPage, TrackPatch
from core.daw.waveforms import draw_waveforms
from core.errors import NotFound, PayloadTooLarge
from core.progress import no_progress

router = APIRouter(prefix="/api/tracks", tags=["tracks"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


def _track_id(value: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound("track")
    return parsed


@router.get("", response_model=TrackPage, responses=_errors)
async def list_tracks(
    user: CurrentUser,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    q: Annotated[str, Query(max_length=200, description="Search in title and artist")] = "",
) -> TrackPage:
    result = await tracks.list_tracks(session, user.id, page=page, page_size=page_size, search=q)
    return TrackPage(
        data=[track_out(t) for t in result.items],
        meta=PageMeta(
            page=result.page, page_size=result.page_size, total_count=result.total_count, total_pages=result.total_pages
        ),
    )


@router.get("/{track_id}", response_model=Envelope[TrackOut], responses=_errors)
async def get_track(track_id: str, request: Request) -> Response:
    # The API's hottest read (clients poll it while a track downloads). The same authentication and
    # rate limit as every route, called inline: FastAPI's sub-dependency solving alone cost 12 % of
    # its throughput. The row is read inline from SQLite and serialised without re-validation
    # (bench/api.py; figures in bench/README.md).
    user = await api_user(request)
    row = await tracks.read_track(user.id, _track_id(track_id))
    return Response(track_envelope_json(row), media_type="application/json")


@router.patch("/{track_id}", response_model=Envelope[TrackOut], responses={**_errors, 422: {"model": ErrorOut}})
async def update_track(track_id: str, body: TrackPatch, user: CurrentUser, session: SessionDep) -> Envelope[TrackOut]:
    track = await tracks.update_track(session, user.id, _track_id(track_id), body.model_dump(exclude_unset=True))
    return Envelope(data=track_out(track))


@router.delete("/{track_id}", status_code=204, responses=_errors)
async def delete_track(track_id: str, user: CurrentUser, session: SessionDep, store: StoreDep) -> Response:
    """Deletes the track with its stems, jobs, analysis results and files."""
    await tracks.delete_track(session, store, user.id, _track_id(track_id))
    return Response(status_code=204)


@router.post(
    "/upload",
    status_code=201,
    response_model=Envelope[TrackOut],
    responses={**_errors, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def upload_track(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File(description="WAV, FLAC, MP3, OGG, M4A, ...")],
    title: Annotated[str, Form(max_length=500)] = "",
    artist: Annotated[str, Form(max_length=500)] = "",
    album: Annotated[str, Form(max_length=500)] = "",
) -> Envelope[TrackOut]:
    """Adds an audio file to the library; its audio is ready for separation and analysis at once (its
    waveform peaks are computed right after the answer)."""
    max_bytes = settings.max_upload_mb * 1024 * 1024
    if file.size is not None and file.size > max_bytes:
        raise PayloadTooLarge(f"The file is larger than the {settings.max_upload_mb} MB limit")
    track = await tracks.add_uploaded_file(
        session,
        store,
        user.id,
        file.file,
        file.filename or "",
        max_bytes=max_bytes,
        title=title,
        artist=artist,
        album=album,
    )
    background.add_task(draw_waveforms, [store.resolve(track.audio_path or "")], no_progress)
    return Envelope(data=track_out(track))
