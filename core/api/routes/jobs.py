"""The user's jobs of every kind: list, read, cancel, retry."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from core import jobs
from core.api.deps import CurrentUser, HeavyUser, SessionDep, SettingsDep
from core.api.ids import id_or_404
from core.api.schemas import Envelope, ErrorOut, JobKind, JobOut, JobPage, JobStatusFilter, PageMeta
from workers.submit import retry_job as submit_retry

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_401 = {401: _error("unauthorized: no valid API token or session")}
_403 = {403: _error("csrf_failed: a browser session's change without its CSRF token")}
_404 = {404: _error("not_found: no such job, or someone else's")}
_422 = {422: _error("validation_error: a query parameter out of range or not one of the listed values")}
_429 = {429: _error("rate_limited: too many requests; `Retry-After` says when to try again")}


def job_id_of(value: str) -> uuid.UUID:
    return id_or_404(value, "job")


@router.get("", response_model=JobPage, responses={**_401, **_422, **_429})
async def list_jobs(
    user: CurrentUser,
    session: SessionDep,
    kind: Annotated[JobKind | None, Query(description="Only jobs of this kind")] = None,
    status: Annotated[JobStatusFilter | None, Query(
        description="Only jobs in this status; `active` is queued or running, `running` is downloading or "
                    "processing")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobPage:
    """The user's jobs, newest first. An unknown `kind` or `status` answers 422 `validation_error`."""
    result = await jobs.list_jobs(session, user.id, kind=kind, status=status, page=page, page_size=page_size)
    return JobPage(
        data=[JobOut.model_validate(j) for j in result.items],
        meta=PageMeta(page=result.page, page_size=result.page_size, total_count=result.total_count,
                      total_pages=result.total_pages),
    )


@router.get("/{job_id}", response_model=Envelope[JobOut], responses={**_401, **_404, **_429})
async def get_job(job_id: str, user: CurrentUser, session: SessionDep) -> Envelope[JobOut]:
    job = await jobs.get_job_for_user(session, user.id, job_id_of(job_id))
    return Envelope(data=JobOut.model_validate(job))


@router.delete("/{job_id}", response_model=Envelope[JobOut],
               responses={**_401, **_403, **_404, 409: _error("job_finished: the job has already ended"), **_429})
async def cancel_job(job_id: str, request: Request, user: CurrentUser, session: SessionDep) -> Envelope[JobOut]:
    """Cancels the job: a queued job never starts; a running one stops at its next progress point, ends
    `cancelled`, and its partial files are removed. A finished job answers 409 `job_finished`."""
    job = await jobs.cancel_job(session, request.app.state.events, user.id, job_id_of(job_id))
    return Envelope(data=JobOut.model_validate(job))


@router.post(
    "/{job_id}/retry", status_code=202, response_model=Envelope[JobOut],
    responses={
        **_401, **_403, **_404,
        409: _error("job_not_retryable: only a failed or cancelled job can be retried; job_already_retried: its "
                    "retry is still queued or running; audio_not_ready: the track has no audio (separation, "
                    "analysis); job_source_gone: its track or stem was deleted"),
        422: _error("validation_error: the job's parameters no longer pass the checks of a new job (a model "
                    "or feature that no longer exists, a link that is not http(s))"),
        **_429,
    },
)
async def retry_job(job_id: str, request: Request, user: HeavyUser, session: SessionDep,
                    settings: SettingsDep) -> Envelope[JobOut]:
    """Starts a failed or cancelled job again: a new `queued` job of the same kind, on the same track, with
    the same parameters, going through the same checks as a new one. Its `params.retry_of` is the old job's
    id; the old job stays as it was. Follow the new job on `/socket` or with `GET /api/jobs/{id}`.

    A separation on the `lalalai` engine without a stored license key answers 401 `unauthorized`. Counts
    against the heavy rate limit, like starting any job."""
    job = await submit_retry(session, request.app.state.events, user.id, settings, job_id_of(job_id))
    return Envelope(data=JobOut.model_validate(job))
