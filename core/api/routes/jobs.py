"""The user's jobs of every kind: list, read, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from core import jobs
from core.api.deps import CurrentUser, SessionDep
from core.api.ids import id_or_404
from core.api.schemas import Envelope, ErrorOut, JobKind, JobOut, JobPage, JobStatus, PageMeta

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


def job_id_of(value: str) -> uuid.UUID:
    return id_or_404(value, "job")


@router.get("", response_model=JobPage, responses=_errors)
async def list_jobs(
    user: CurrentUser,
    session: SessionDep,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobPage:
    """The user's jobs, newest first."""
    result = await jobs.list_jobs(session, user.id, kind=kind, status=status, page=page, page_size=page_size)
    return JobPage(
        data=[JobOut.model_validate(j) for j in result.items],
        meta=PageMeta(page=result.page, page_size=result.page_size, total_count=result.total_count,
                      total_pages=result.total_pages),
    )


@router.get("/{job_id}", response_model=Envelope[JobOut], responses=_errors)
async def get_job(job_id: str, user: CurrentUser, session: SessionDep) -> Envelope[JobOut]:
    job = await jobs.get_job_for_user(session, user.id, job_id_of(job_id))
    return Envelope(data=JobOut.model_validate(job))


@router.delete("/{job_id}", response_model=Envelope[JobOut], responses={**_errors, 409: {"model": ErrorOut}})
async def cancel_job(job_id: str, request: Request, user: CurrentUser, session: SessionDep) -> Envelope[JobOut]:
    """Cancels the job: a queued job never starts; a running one stops at its next progress point, ends
    `cancelled`, and its partial files are removed. A finished job answers 409 `job_finished`."""
    job = await jobs.cancel_job(session, request.app.state.events, user.id, job_id_of(job_id))
    return Envelope(data=JobOut.model_validate(job))
