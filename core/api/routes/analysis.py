"""Audio analysis: enqueue an analysis of a track or stem, poll it, read the newest result, export it.

``router`` holds the ``/api/analysis`` routes; ``export_router`` the downloadable JSON file under
``/export/analysis``. The work itself happens in the ``analysis`` job (workers/handlers/analysis.py).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from core import jobs
from core.analysis import record, results
from core.api.deps import CurrentUser, HeavyUser, SessionDep
from core.api.ids import id_or_404
from core.api.routes.jobs import job_id_of
from core.api.schemas import (
    BAD_BODY,
    AnalysisExport,
    AnalysisJobOut,
    AnalysisOut,
    AnalyzeRequest,
    Envelope,
    ErrorOut,
    JobQueued,
)
from core.tracks import get_track
from data.files import safe_filename
from data.models import AnalysisResult
from workers.submit import submit_analysis

router = APIRouter(prefix="/api/analysis", tags=["analysis"])
export_router = APIRouter(prefix="/export", tags=["export"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


def _analysis_out(row: AnalysisResult) -> AnalysisOut:
    return AnalysisOut(id=row.id, track_id=row.track_id, stem_id=row.stem_id, job_id=row.job_id,
                       created_at=row.created_at, result=record.to_result(row))


@router.post("/analyze", status_code=202, response_model=Envelope[JobQueued],
             responses={**BAD_BODY, **_errors, 409: {"model": ErrorOut}, 422: {"model": ErrorOut}})
async def analyze(body: AnalyzeRequest, request: Request, user: HeavyUser, session: SessionDep) -> Envelope[JobQueued]:
    """Enqueues an analysis of the track's audio (or, with `stem_id`, of one stem); follow it on `/socket`
    or poll `GET /api/analysis/job/{id}`. Unknown feature names answer 422 listing the allowed ones; a
    track whose audio has not arrived yet answers 409 `audio_not_ready`; a `tempo_range` that is not an octave
    within 30-300 BPM answers 422 naming `tempo_range`."""
    tempo_range = (body.tempo_range.min, body.tempo_range.max) if body.tempo_range is not None else None
    job = await submit_analysis(session, request.app.state.events, user.id, track_id=body.track_id,
                                stem_id=body.stem_id, features=body.features, tempo_range=tempo_range)
    return Envelope(data=JobQueued(job_id=job.id, track_id=job.track_id))


@router.get("/job/{job_id}", response_model=Envelope[AnalysisJobOut], responses=_errors)
async def analysis_job(job_id: str, user: CurrentUser, session: SessionDep) -> Envelope[AnalysisJobOut]:
    """The job's status; `result` holds the analysis once it completed, `error` says why it failed."""
    job = await jobs.get_job_for_user(session, user.id, job_id_of(job_id), "analysis")
    return Envelope(data=AnalysisJobOut(
        id=job.id, status=job.status, progress=job.progress,  # type: ignore[arg-type]
        result=job.result if job.status == jobs.COMPLETED else None, error=job.error,
    ))


@router.get("/stem/{stem_id}", response_model=Envelope[AnalysisOut], responses=_errors)
async def latest_stem_analysis(stem_id: str, user: CurrentUser, session: SessionDep) -> Envelope[AnalysisOut]:
    """The newest analysis of one stem (404 when it was never analysed)."""
    row = await results.latest(session, user.id, stem_id=id_or_404(stem_id, "analysis"))
    return Envelope(data=_analysis_out(row))


# Declared after /job/{id} and /stem/{id}, so their paths are never taken for a track id.
@router.get("/{track_id}", response_model=Envelope[AnalysisOut], responses=_errors)
async def latest_track_analysis(track_id: str, user: CurrentUser, session: SessionDep) -> Envelope[AnalysisOut]:
    """The newest analysis of the track's own audio (404 when it was never analysed)."""
    row = await results.latest(session, user.id, track_id=id_or_404(track_id, "analysis"))
    return Envelope(data=_analysis_out(row))


def attachment(filename: str) -> str:
    """A Content-Disposition that keeps a non-ASCII name (RFC 6266: ``filename*``) with an ASCII
    fallback for old clients."""
    if filename.isascii():
        return f'attachment; filename="{filename}"'
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode().strip() or "analysis.json"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def export_filename(title: str, artist: str) -> str:
    """ "Artist - Title.analysis.json", safe on every OS."""
    name = f"{artist} - {title}" if artist and title else (title or artist or "track")
    return safe_filename(name, "", max_len=140) + ".analysis.json"


@export_router.get("/analysis/{track_id}", response_model=AnalysisExport, responses=_errors)
async def export_analysis(track_id: str, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """The newest analysis of the track as a JSON file to download (session cookie or bearer token)."""
    track = await get_track(session, user.id, id_or_404(track_id, "track"))
    row = await results.latest(session, user.id, track_id=track.id)
    body = AnalysisExport(track_id=track.id, title=track.title, artist=track.artist,
                          analysis=record.to_result(row))
    return JSONResponse(jsonable_encoder(body),
                        headers={"Content-Disposition": attachment(export_filename(track.title, track.artist))})
