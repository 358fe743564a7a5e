"""Stem downloads: ``/export/stem/{id}`` (one file, Range requests work) and ``/export/stems/{track_id}``
(a ZIP of the track's newest stems, streamed while it is built). Session cookie or bearer token; a stem
or track of someone else answers 404 like a missing one. The analysis JSON export lives with the
analysis routes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse

from core import stem_export, stems
from core.api.deps import CurrentUser, SessionDep, StoreDep
from core.api.ids import id_or_404
from core.api.routes.analysis import attachment
from core.api.routes.files import StoredFileResponse, media_type
from core.api.schemas import ErrorOut
from core.tracks import get_track

router = APIRouter(prefix="/export", tags=["export"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


@router.get("/stem/{stem_id}", response_class=FileResponse,
            responses={**_errors, 200: {"content": {"audio/wav": {}, "audio/flac": {}, "audio/mpeg": {}}},
                       206: {"description": "The requested byte range"}, 416: {"model": ErrorOut}})
async def export_stem(stem_id: str, request: Request, user: CurrentUser, session: SessionDep,
                      store: StoreDep) -> FileResponse:
    """One stem as a download named "Artist - Title - vocals.wav"; answers `Range` with 206."""
    stem = await stems.get_stem(session, user.id, id_or_404(stem_id, "stem"))
    track = await get_track(session, user.id, stem.track_id)
    path = stem_export.stem_path(store, stem)
    return StoredFileResponse(path, media_type=media_type(path), headers={
        "Content-Disposition": attachment(stem_export.stem_filename(track, stem)),
        "Cache-Control": "private, max-age=0"})


router.add_api_route("/stem/{stem_id}", export_stem, methods=["HEAD"], include_in_schema=False)


@router.get("/stems/{track_id}", response_class=StreamingResponse,
            responses={**_errors, 200: {"content": {"application/zip": {}}}})
async def export_stems(track_id: str, user: CurrentUser, session: SessionDep, store: StoreDep) -> StreamingResponse:
    """The stems of the track's newest completed separation as one ZIP ("Artist - Title (stems).zip", each
    entry named like a single stem download), streamed as it is built with its exact `Content-Length`."""
    track = await get_track(session, user.id, id_or_404(track_id, "track"))
    archive = stem_export.stems_archive(store, track, await stems.latest_stems(session, user.id, track.id))
    return StreamingResponse(archive.chunks(), media_type="application/zip", headers={
        "Content-Length": str(archive.size), "Content-Disposition": attachment(archive.filename),
        "Cache-Control": "private, max-age=0"})
