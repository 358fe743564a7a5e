"""Stem separation: enqueue a separation of a track, poll the job, list the models.

The work happens in the ``processing`` job (workers/handlers/processing.py); the checks that refuse a
request before any job exists live in workers/submit.py and core/processing.py, shared with the pages.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request

from core import jobs
from core.api.deps import CurrentUser, HeavyUser, SessionDep, SettingsDep
from core.api.routes.jobs import job_id_of
from core.api.schemas import (
    BAD_BODY,
    Envelope,
    ErrorOut,
    ModelList,
    ModelOut,
    ProcessingJobOut,
    ProcessingQueued,
    SeparateRequest,
    StemOut,
)
from core.processing import KIND
from core.separation import MODELS, weights
from workers.submit import submit_processing

router = APIRouter(prefix="/api/processing", tags=["processing"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


@router.post("/separate", status_code=202, response_model=Envelope[ProcessingQueued],
             responses={**BAD_BODY, **_errors, 409: {"model": ErrorOut, "description": "audio_not_ready"},
                        422: {"model": ErrorOut}})
async def separate(body: SeparateRequest, request: Request, user: HeavyUser, session: SessionDep,
                   settings: SettingsDep) -> Envelope[ProcessingQueued]:
    """Enqueues a separation of the track into stems; follow it on `/socket` or poll
    `GET /api/processing/job/{id}`. An unknown model or engine answers 422 listing the allowed values; a
    track whose audio has not arrived yet 409 `audio_not_ready`; the `lalalai` engine without a stored
    license key 401 `unauthorized` (set it with `PUT /users/settings` `lalalai_key` or on the settings page).
    With `preview` only that part of the track is separated (a window outside the track answers 422 naming
    `preview.start` or `preview.duration`); its stems are marked as a preview and never replace the full stems."""
    preview = (body.preview.start, body.preview.duration) if body.preview is not None else None
    job = await submit_processing(session, request.app.state.events, user.id, settings, track_id=body.track_id,
                                  model=body.model, engine=body.engine, preview=preview)
    return Envelope(data=ProcessingQueued(job_id=job.id, track_id=body.track_id, model=body.model))


@router.get("/job/{job_id}", response_model=Envelope[ProcessingJobOut], responses=_errors,
            response_model_exclude_unset=True)
async def processing_job(job_id: str, user: CurrentUser, session: SessionDep) -> Envelope[ProcessingJobOut]:
    """The job's status; `stems` lists the stem records once it completed, `error` says why it failed."""
    job = await jobs.get_job_for_user(session, user.id, job_id_of(job_id), KIND)
    done = job.status == jobs.COMPLETED
    stems = [StemOut.model_validate(s) for s in (job.result or {}).get("stems", [])] if done else []
    # A preview job (and each of its stems) adds `preview`; any other keeps the contract's exact shape.
    preview = (job.result or {}).get("preview") if done else None
    return Envelope(data=ProcessingJobOut(
        id=job.id, status=job.status, progress=job.progress,  # type: ignore[arg-type]
        model=str((job.params or {}).get("model", "")), stems=stems, error=job.error,
        **({"preview": preview} if preview else {}),
    ))


def _presence(demucs_repo: str) -> dict[str, bool]:
    """Which models' weights are here: file names and YAML only, no torch (blocking disk reads)."""
    return weights.presence(Path(demucs_repo).expanduser() if demucs_repo else None)


@router.get("/models", response_model=Envelope[ModelList], responses=_errors)
async def list_models(user: CurrentUser, settings: SettingsDep) -> Envelope[ModelList]:
    """The separation models (as the REST contract lists them), each with whether its weights are on this
    server already. The lalal.ai engine takes the same names (it asks lalal.ai for the same stems)."""
    present = await asyncio.to_thread(_presence, settings.demucs_repo)
    return Envelope(data=ModelList(models=[
        ModelOut(name=m.name, description=m.description, stems=m.stems, available=present[m.name]) for m in MODELS
    ]))
