"""The user's tracks: list, read, edit, delete, upload."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, File, Form, Query, Request, Response, UploadFile

from core import tracks
from core.api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep, api_user, parse_uuid
from core.api.presenters import track_envelope_json, track_list_item, track_out
from core.api.schemas import BAD_BODY, TRACK_STATUSES_DOC, Envelope, ErrorOut, PageMeta, TrackOut, TrackPage, TrackPatch
from core.daw.waveforms import draw_waveforms
from core.errors import NotFound, PayloadTooLarge
from core.progress import no_progress

router = APIRouter(prefix="/api/tracks", tags=["tracks"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}
_errors_422 = {401: {"model": ErrorOut}, 422: {"model": ErrorOut}, 429: {"model": ErrorOut}}


def _track_id(value: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound("track")
    return parsed


TrackSort = Literal["created_at", "title", "artist", "duration", "bpm", "key", "energy"]
TrackStatus = Literal["pending", "active", "ready", "separated", "analysed", "failed"]
_KEY_DOC = "a key name (\"A minor\", \"F# major\", \"Bbm\") or a Camelot code (\"8A\")"


@router.get("", response_model=TrackPage, responses=_errors_422)
async def list_tracks(
    user: CurrentUser,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    q: Annotated[str, Query(max_length=200, description="Search in title and artist")] = "",
    sort: Annotated[TrackSort, Query(description="created_at (when added), title, artist, duration, bpm (tempo), "
                                     "key (Camelot wheel order: 1A, 1B, 2A ... 12B) or energy. Tracks without "
                                     "the value come last in either order")] = "created_at",
    order: Annotated[Literal["asc", "desc"] | None, Query(description="Default: desc for created_at (newest "
                                                          "first), asc for the others")] = None,
    status: Annotated[TrackStatus | None, Query(description=TRACK_STATUSES_DOC)] = None,
    bpm_min: Annotated[float | None, Query(ge=0, le=1000, description="Tempo at least this (BPM)")] = None,
    bpm_max: Annotated[float | None, Query(ge=0, le=1000, description="Tempo at most this (BPM)")] = None,
    key: Annotated[str | None, Query(min_length=1, max_length=40, description=f"Tracks in this key: {_KEY_DOC}",
                                     examples=["A minor"])] = None,
    compatible_with: Annotated[str | None, Query(
        min_length=1, max_length=40, examples=["8A"],
        description=f"Tracks that mix harmonically with this key, {_KEY_DOC}: the same key, one step either way "
                    "on the Camelot wheel with the same letter (8A: 7A, 9A), and its relative major/minor (8B)",
    )] = None,
) -> TrackPage:
    """Your library, one page at a time: sorted and filtered on the server. Each row adds to the track its
    analysis summary (tempo, key, camelot, key_confidence, energy, analysed), has_stems and activity (the
    newest job). Invalid values answer 422 validation_error with details naming the parameter."""
    result = await tracks.list_tracks(
        session, user.id, page=page, page_size=page_size, search=q, sort=sort, order=order, status=status,
        bpm_min=bpm_min, bpm_max=bpm_max, key=key, compatible_with=compatible_with,
    )
    return TrackPage(
        data=[track_list_item(row) for row in result.items],
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


@router.patch("/{track_id}", response_model=Envelope[TrackOut],
              responses={**BAD_BODY, **_errors, 422: {"model": ErrorOut}})
async def update_track(track_id: str, body: TrackPatch, user: CurrentUser, session: SessionDep) -> Envelope[TrackOut]:
    track = await tracks.update_track(session, user.id, _track_id(track_id), body.model_dump(exclude_unset=True))
    return Envelope(data=track_out(track))


@router.delete("/{track_id}", status_code=204, responses=_errors)
async def delete_track(track_id: str, request: Request, user: CurrentUser, session: SessionDep,
                       store: StoreDep) -> Response:
    """Deletes the track with its stems, analysis results, saved remix and edit history, jobs and files (audio,
    stems, waveform caches). Its queued and running jobs are cancelled first (announced as cancelled)."""
    await tracks.delete_track(session, store, user.id, _track_id(track_id), events=request.app.state.events)
    return Response(status_code=204)


@router.post(
    "/upload",
    status_code=201,
    response_model=Envelope[TrackOut],
    responses={**BAD_BODY, **_errors, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}},
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
