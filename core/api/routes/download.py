"""Downloads: enqueue a link's audio as a job, and poll its status."""

from __future__ import annotations

from urllib.parse import urlparse

from fastapi import APIRouter, Request

from core import jobs
from core.api.deps import CurrentUser, HeavyUser, SessionDep
from core.api.routes.jobs import job_id_of
from core.api.schemas import DownloadJobOut, DownloadRequest, Envelope, ErrorOut, JobQueued
from core.downloader import title_from_url
from core.errors import InvalidInput, NotFound
from data.models import Track
from workers.tasks import enqueue_async

router = APIRouter(prefix="/api/download", tags=["download"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


def _check_url(url: str) -> str:
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput("The link must be an http(s) URL", details={"url": "must be an http(s) URL"})
    if parsed.netloc.endswith("spotify.com") or url.startswith("spotify:"):
        raise InvalidInput("Spotify links cannot be downloaded yet; paste a link to the audio itself",
                           code="invalid_url", details={"url": "Spotify links are not supported yet"})
    return url


@router.post("/track", status_code=202, response_model=Envelope[JobQueued],
             responses={**_errors, 422: {"model": ErrorOut}})
async def download_track(body: DownloadRequest, request: Request, user: HeavyUser,
                         session: SessionDep) -> Envelope[JobQueued]:
    """Enqueues a download of the link's audio into a new track; follow it on `/socket` or poll
    `GET /api/download/job/{id}`."""
    url = _check_url(body.url)
    track = Track(user_id=user.id, title=title_from_url(url), source_url=url)
    session.add(track)
    await session.flush()
    job = await jobs.create_job(session, request.app.state.events, user.id, "download", track.id,
                                {"url": url, "quality": body.quality, "placeholder_title": True})
    await enqueue_async("download", job.id)
    return Envelope(data=JobQueued(job_id=job.id, track_id=track.id))


@router.get("/job/{job_id}", response_model=Envelope[DownloadJobOut], responses=_errors)
async def download_job(job_id: str, user: CurrentUser, session: SessionDep) -> Envelope[DownloadJobOut]:
    job = await jobs.get_job_for_user(session, user.id, job_id_of(job_id))
    if job.kind != "download":
        raise NotFound("job")
    result = job.result or {}
    done = job.status == jobs.COMPLETED
    return Envelope(data=DownloadJobOut(
        id=job.id, status=job.status, progress=job.progress,  # type: ignore[arg-type]
        output_path=result.get("output_path") if done else None,
        file_size=result.get("file_size") if done else None, error=job.error,
    ))
