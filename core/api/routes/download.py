"""Downloads: enqueue a link's audio as a job, and poll its status.

Two kinds of link. A Spotify track link: the metadata comes from Spotify now (the track is created
or refreshed in the library, once per Spotify id), and the job searches for the audio (core/search.py)
unless the request names a ``source_url``. Any other http(s) link: yt-dlp downloads it into a new track.
Spotify albums and playlists are refused with a pointer to ``POST /api/spotify/fetch``: one job per
request keeps the response (one ``job_id``, one ``track_id``) what the contract says.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from core import jobs
from core.api.deps import CurrentUser, HeavyUser, SessionDep, SettingsDep
from core.api.routes.jobs import job_id_of
from core.api.schemas import DownloadJobOut, DownloadRequest, Envelope, ErrorOut, JobQueued
from workers.submit import submit_download

router = APIRouter(prefix="/api/download", tags=["download"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


@router.post("/track", status_code=202, response_model=Envelope[JobQueued],
             responses={**_errors, 400: {"model": ErrorOut, "description": "invalid_url: a malformed Spotify link; "
                                                                 "bad_request: the body is not UTF-8 text"},
                        422: {"model": ErrorOut},
                        502: {"model": ErrorOut, "description": "spotify_error: Spotify refused the request"}})
async def download_track(body: DownloadRequest, request: Request, user: HeavyUser, session: SessionDep,
                         settings: SettingsDep) -> Envelope[JobQueued]:
    """Enqueues a download of the link's audio; follow it on `/socket` or poll `GET /api/download/job/{id}`.

    A Spotify track link creates (or refreshes) the track in the library and searches for its audio;
    `source_url` skips the search and downloads that link instead."""
    job = await submit_download(session, request.app.state.events, user.id, settings, url=body.url,
                                quality=body.quality, source_url=body.source_url)
    return Envelope(data=JobQueued(job_id=job.id, track_id=job.track_id))


@router.get("/job/{job_id}", response_model=Envelope[DownloadJobOut], responses=_errors)
async def download_job(job_id: str, user: CurrentUser, session: SessionDep) -> Envelope[DownloadJobOut]:
    job = await jobs.get_job_for_user(session, user.id, job_id_of(job_id), "download")
    result = job.result or {}
    done = job.status == jobs.COMPLETED
    return Envelope(data=DownloadJobOut(
        id=job.id, status=job.status, progress=job.progress,  # type: ignore[arg-type]
        output_path=result.get("output_path") if done else None,
        file_size=result.get("file_size") if done else None, error=job.error,
    ))
