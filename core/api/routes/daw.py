"""The DAW routes: export a remix as WAV, the saved remix with its undo/redo history, waveform peaks and PCM
windows of stems and tracks. Thin: the remix domain lives in core/daw/.

* ``POST /api/daw/export``: browser route (session cookie + CSRF; a bearer token alone is refused).
* ``/api/daw/{track_id}`` (read, change, undo, redo), ``.../peaks`` and ``.../pcm``: cookie (+ CSRF on
  changes) or a bearer token, under the media rate limit: an editor saves every gesture and streams its stems.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from core.api.deps import LimitedBrowserUser, MediaUser, SessionDep, SettingsDep, StoreDep
from core.api.ids import id_or_404
from core.api.routes.analysis import attachment
from core.api.schemas import BAD_BODY, Envelope, ErrorOut, RemixChange, RemixOut, RemixStepOut, RemixStepRequest
from core.daw import export as daw_export
from core.daw import remix
from core.daw.pcm import MAX_WINDOW_FRAMES, read_window
from core.daw.peaks import LEVELS, BasePeaks, cache_path, cached_peaks
from core.errors import InvalidInput, NotFound
from core.stem_export import stem_path
from core.stems import get_stem
from core.tracks import track_with_audio
from data.files import FileStore, UnsafePath

router = APIRouter(tags=["daw"])

_errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 404: {"model": ErrorOut},
                                            429: {"model": ErrorOut}}
_MANIFEST_MAX_BYTES = 4 * 1024 * 1024

# --- export ---------------------------------------------------------------------------------------------------

_EXPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["track_id", "manifest"],
            "properties": {
                "track_id": {"type": "string", "format": "uuid"},
                "manifest": {"type": "string", "description": "The edit manifest (JSON, version 1)"},
                "stems[]": {"type": "array", "items": {"type": "string"}, "description":
                            "Stored stem ids (plain values) and/or stem audio files (named by `file_index` in "
                            "upload order); every part is mixed"},
                "range": {"type": "string", "description": 'Optional JSON {"start_ms", "end_ms"}: replaces the '
                          "manifest's range"},
                "csrf_token": {"type": "string", "description": "The session's CSRF token (or the X-CSRF-Token "
                               "header)"},
            },
        }}},
    }
}


def _text_field(form: Any, name: str, *, required: bool) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"Invalid export: {name}: required", details={name: "required"})
        return None
    if isinstance(value, UploadFile):  # curl -F manifest=@remix.json sends a file part
        data = value.file.read(_MANIFEST_MAX_BYTES + 1)
        if len(data) > _MANIFEST_MAX_BYTES:
            raise InvalidInput(f"Invalid export: {name}: larger than 4 MB", details={name: "larger than 4 MB"})
        return data.decode("utf-8", errors="replace")
    return str(value)


@router.post(
    "/api/daw/export", response_class=StreamingResponse, openapi_extra=_EXPORT_BODY,
    responses={200: {"content": {"audio/wav": {}}, "description": "The rendered range, 24-bit PCM, streamed",
                     "headers": {"X-Clipped-Samples": {"description": "Samples beyond full scale (clipped)",
                                                       "schema": {"type": "integer"}}}},
               **BAD_BODY, 401: {"model": ErrorOut}, 403: {"model": ErrorOut, "description": "csrf_failed"},
               404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def export_mix(request: Request, user: LimitedBrowserUser, session: SessionDep, store: StoreDep,
                     settings: SettingsDep) -> StreamingResponse:
    """Renders an edit manifest of the track's stems to a WAV download, "<Artist> - <Title> (remix).wav", at
    the stems' sample rate. The download starts at once: the WAV is streamed as it is mixed. Browser route:
    session cookie and CSRF token; a bearer token alone answers 401."""
    if not request.headers.get("content-type", "").startswith(("multipart/form-data",
                                                               "application/x-www-form-urlencoded")):
        raise InvalidInput("Send the export as multipart/form-data (fields track_id, manifest, stems[])",
                           details={"body": "expected multipart/form-data"})
    form = await request.form()
    track_id = id_or_404(_text_field(form, "track_id", required=True) or "", "track")
    manifest = _text_field(form, "manifest", required=True) or ""
    parts = form.getlist("stems[]")
    uploads = [daw_export.UploadedStem(p.filename or f"file {i}", p.file)
               for i, p in enumerate(p for p in parts if isinstance(p, UploadFile))]
    values = [p for p in parts if isinstance(p, str)]
    export = await daw_export.prepare_export(
        session, store, user.id, track_id=track_id, manifest_json=manifest,
        range_json=_text_field(form, "range", required=False), stem_values=values, uploads=uploads,
        max_upload_bytes=settings.max_upload_mb * 1024 * 1024)
    return StreamingResponse(export.chunks(), media_type="audio/wav", background=BackgroundTask(export.cleanup),
                             headers={"Content-Length": str(export.size),
                                      "Content-Disposition": attachment(export.filename),
                                      "X-Clipped-Samples": str(export.clipped), "Cache-Control": "no-store"})


# --- saved remix ----------------------------------------------------------------------------------------------


def _remix_out(state: remix.RemixState) -> Envelope[RemixOut]:
    return Envelope(data=RemixOut(
        track_id=state.track_id, version=state.version, manifest=state.manifest,  # type: ignore[arg-type]
        can_undo=state.can_undo, can_redo=state.can_redo, updated_at=state.updated_at,
        history=[RemixStepOut(seq=s.seq, label=s.label, undone=s.undone, created_at=s.created_at)
                 for s in state.history]))


_remix_errors = {**_errors, 409: {"model": ErrorOut, "description": "no_stems, version_conflict, "
                                  "nothing_to_undo, nothing_to_redo"}, 422: {"model": ErrorOut}}


@router.get("/api/daw/{track_id}", response_model=Envelope[RemixOut], responses=_remix_errors)
async def read_remix(track_id: str, request: Request, response: Response, user: MediaUser,
                     session: SessionDep) -> Any:
    """The saved remix of the track: its edit manifest, version and history. A track never edited answers
    its default (every stem of the newest separation at unity gain, centred), version 0; one without stems
    409 `no_stems`. Answers `ETag`; `If-None-Match` with it gives 304 while nothing changed."""
    state = await remix.read_remix(session, user.id, id_or_404(track_id, "track"))
    etag = f'W/"remix-{state.version}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-cache"
    return _remix_out(state)


@router.post("/api/daw/{track_id}/changes", response_model=Envelope[RemixOut],
             responses={**BAD_BODY, **_remix_errors})
async def change_remix(track_id: str, body: RemixChange, user: MediaUser, session: SessionDep,
                       store: StoreDep) -> Envelope[RemixOut]:
    """Applies one change (one step of undo): the whole new `manifest`, or a JSON Patch `patch` of the
    current one. With `base_version`, a remix changed meanwhile answers 409 `version_conflict`. The result
    is validated like an export (stems of this track, times inside it): 422 with the field's path."""
    state = await remix.apply_change(session, store, user.id, id_or_404(track_id, "track"), manifest=body.manifest,
                                     patch=body.patch, base_version=body.base_version, label=body.label)
    return _remix_out(state)


@router.post("/api/daw/{track_id}/undo", response_model=Envelope[RemixOut], responses={**BAD_BODY, **_remix_errors})
async def undo_remix(track_id: str, user: MediaUser, session: SessionDep,
                     body: RemixStepRequest | None = None) -> Envelope[RemixOut]:
    """Undoes the newest step (409 `nothing_to_undo` when there is none)."""
    return _remix_out(await remix.undo(session, user.id, id_or_404(track_id, "track"),
                                       body.base_version if body else None))


@router.post("/api/daw/{track_id}/redo", response_model=Envelope[RemixOut], responses={**BAD_BODY, **_remix_errors})
async def redo_remix(track_id: str, user: MediaUser, session: SessionDep,
                     body: RemixStepRequest | None = None) -> Envelope[RemixOut]:
    """Redoes the oldest undone step (409 `nothing_to_redo` when there is none)."""
    return _remix_out(await remix.redo(session, user.id, id_or_404(track_id, "track"),
                                       body.base_version if body else None))


# --- peaks and PCM windows ------------------------------------------------------------------------------------

_computing: dict[Path, asyncio.Lock] = {}


async def _peaks(audio: Path) -> BasePeaks:
    """Cached peaks; one computation per file at a time in this process (others wait for it)."""
    lock = _computing.setdefault(audio, asyncio.Lock())
    try:
        async with lock:
            return await asyncio.to_thread(cached_peaks, audio)
    finally:
        if not lock.locked() and _computing.get(audio) is lock:
            _computing.pop(audio, None)


def _etag(audio: Path, *parts: object) -> str:
    try:
        version = cache_path(audio).name
    except OSError:
        raise NotFound("audio file") from None
    return '"' + hashlib.sha1("|".join(map(str, (version, *parts))).encode()).hexdigest()[:24] + '"'


def _not_modified(request: Request, etag: str) -> Response | None:
    return Response(status_code=304, headers={"ETag": etag}) if request.headers.get("if-none-match") == etag else None


_CACHE = "private, max-age=86400"
SamplesPerPixel = Annotated[int, Query(description=f"One of {', '.join(map(str, LEVELS))}")]
Bits = Annotated[int, Query(description="8 (values -128..127) or 16 (-32768..32767)")]


async def _peaks_response(request: Request, audio: Path, samples_per_pixel: int, bits: int) -> Response:
    if samples_per_pixel not in LEVELS:
        raise InvalidInput(f"samples_per_pixel must be one of {', '.join(map(str, LEVELS))}",
                           details={"samples_per_pixel": f"one of {', '.join(map(str, LEVELS))}"})
    if bits not in (8, 16):
        raise InvalidInput("bits must be 8 or 16", details={"bits": "8 or 16"})
    etag = _etag(audio, "peaks", samples_per_pixel, bits)
    if (cached := _not_modified(request, etag)) is not None:
        return cached
    peaks = await _peaks(audio)
    return Response(peaks.to_json(samples_per_pixel, bits), media_type="application/json",
                    headers={"ETag": etag, "Cache-Control": _CACHE})


_media_errors = {**_errors, 409: {"model": ErrorOut, "description": "audio_not_ready"}, 422: {"model": ErrorOut}}
_PEAKS_DOC = {200: {"description": "audiowaveform JSON, version 2: `{version, channels, sample_rate, "
                    "samples_per_pixel, bits, length, data}`; `data` holds, per pixel and per channel, min then "
                    "max", "content": {"application/json": {}}}, **_media_errors}


def _stored_path(store: FileStore, relative: str | None) -> Path:
    try:
        path = store.resolve(relative or "")
    except UnsafePath:
        raise NotFound("audio file") from None
    if not path.is_file():
        raise NotFound("audio file")
    return path


async def _stem_file(session: SessionDep, store: FileStore, user_id: uuid.UUID, stem_id: str) -> Path:
    stem = await get_stem(session, user_id, id_or_404(stem_id, "stem"))
    return stem_path(store, stem)


async def _track_file(session: SessionDep, store: FileStore, user_id: uuid.UUID, track_id: str) -> Path:
    track = await track_with_audio(session, user_id, id_or_404(track_id, "track"), "open")
    return _stored_path(store, track.audio_path)


@router.get("/api/stems/{stem_id}/peaks", response_class=Response, responses=_PEAKS_DOC)
async def stem_peaks(stem_id: str, request: Request, user: MediaUser, session: SessionDep, store: StoreDep,
                     samples_per_pixel: SamplesPerPixel = 1024, bits: Bits = 8) -> Response:
    """The stem's waveform peaks (what peaks.js reads); computed on first request when not cached yet."""
    return await _peaks_response(request, await _stem_file(session, store, user.id, stem_id), samples_per_pixel,
                                 bits)


@router.get("/api/tracks/{track_id}/peaks", response_class=Response, responses=_PEAKS_DOC)
async def track_peaks(track_id: str, request: Request, user: MediaUser, session: SessionDep, store: StoreDep,
                      samples_per_pixel: SamplesPerPixel = 1024, bits: Bits = 8) -> Response:
    """The waveform peaks of the track's own audio; 409 `audio_not_ready` before it is downloaded."""
    return await _peaks_response(request, await _track_file(session, store, user.id, track_id), samples_per_pixel,
                                 bits)


Start = Annotated[int, Query(ge=0, description="First frame of the window")]
Frames = Annotated[int, Query(ge=1, le=MAX_WINDOW_FRAMES, description="Frames wanted (fewer near the end)")]
SampleFormat = Annotated[Literal["s16", "f32"], Query(alias="format", description="s16: 16-bit signed, f32: "
                                                      "float32; interleaved, little-endian")]
_PCM_HEADERS = {
    "X-Sample-Rate": "Hz", "X-Channels": "1 or 2", "X-Sample-Format": "s16le or f32le",
    "X-Start-Frame": "first frame of this body", "X-Frames": "frames in this body (fewer near the end)",
    "X-Total-Frames": "frames in the file"}
_PCM_DOC = {200: {"description": "Raw interleaved PCM, little-endian", "content": {"application/octet-stream": {}},
                  "headers": {k: {"description": v, "schema": {"type": "string" if k == "X-Sample-Format" else
                                                                         "integer"}}
                              for k, v in _PCM_HEADERS.items()}}, **_media_errors}


async def _pcm_response(request: Request, audio: Path, start: int, frames: int, sample_format: str) -> Response:
    etag = _etag(audio, "pcm", start, frames, sample_format)
    if (cached := _not_modified(request, etag)) is not None:
        return cached
    try:
        window = await asyncio.to_thread(read_window, audio, start, frames, sample_format)
    except ValueError as exc:
        raise InvalidInput(str(exc), details={"start": str(exc)}) from None
    return Response(window.data, media_type="application/octet-stream", headers={
        "X-Sample-Rate": str(window.sample_rate), "X-Channels": str(window.channels),
        "X-Sample-Format": f"{window.sample_format}le", "X-Start-Frame": str(window.start),
        "X-Frames": str(window.frames), "X-Total-Frames": str(window.total_frames),
        "ETag": etag, "Cache-Control": _CACHE})


@router.get("/api/stems/{stem_id}/pcm", response_class=Response, responses=_PCM_DOC)
async def stem_pcm(stem_id: str, request: Request, user: MediaUser, session: SessionDep, store: StoreDep,
                   start: Start = 0, frames: Frames = 65536, sample_format: SampleFormat = "f32") -> Response:
    """A window of the stem's samples, for players that stream (the editor schedules windows back to back):
    seeks in the file, so any window costs the same."""
    return await _pcm_response(request, await _stem_file(session, store, user.id, stem_id), start, frames,
                               sample_format)


@router.get("/api/tracks/{track_id}/pcm", response_class=Response, responses=_PCM_DOC)
async def track_pcm(track_id: str, request: Request, user: MediaUser, session: SessionDep, store: StoreDep,
                    start: Start = 0, frames: Frames = 65536, sample_format: SampleFormat = "f32") -> Response:
    """A window of the track's own audio, as for a stem."""
    return await _pcm_response(request, await _track_file(session, store, user.id, track_id), start, frames,
                               sample_format)

