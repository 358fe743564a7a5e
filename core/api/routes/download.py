"""Downloads: enqueue a link's audio as a job, and poll its status.

Two kinds of link. A Spotify track link: the metadata comes from Spotify now (the track is created
or refreshed in the library, once per Spotify id), and the job searches for the audio (core/search.py)
unless the request names a ``source_url``. Any other http(s) link: yt-dlp downloads it into a new track.
Spotify albums and playlists are refused with a pointer to ``POST /api/spotify/fetch``: one job per
request keeps the response (one ``job_id``, one ``track_id``) what the contract says.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlparse

from fastapi import APIRouter, Request

from core import jobs, spotify
from core.api.deps import CurrentUser, HeavyUser, SessionDep, SettingsDep
from core.api.routes.jobs import job_id_of
from core.api.schemas import DownloadJobOut, DownloadRequest, Envelope, ErrorOut, JobQueued
from core.downloader import title_from_url
from core.errors import InvalidInput, NotFound
from data.models import Track
from workers.tasks import enqueue_async

router = APIRouter(prefix="/api/download", tags=["download"])

_errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 429: {"model": ErrorOut}}


def _is_spotify(url: str) -> bool:
    host = (urlparse(url if "://" in url else "https://" + url).hostname or "").lower()
    return url.lower().startswith("spotify:") or host == "spotify.com" or host.endswith(".spotify.com")


def _check_url(url: str, field: str = "url") -> str:
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(f"The {field} must be an http(s) URL", details={field: "must be an http(s) URL"})
    return url


def _check_source(url: str) -> str:
    url = _check_url(url, "source_url")
    if _is_spotify(url):
        raise InvalidInput("source_url must be a link to the audio (a video page or an audio file), not Spotify",
                           details={"source_url": "Spotify has no downloadable audio"})
    return url


@router.post("/track", status_code=202, response_model=Envelope[JobQueued],
             responses={**_errors, 400: {"model": ErrorOut, "description": "invalid_url: a malformed Spotify link"},
                        422: {"model": ErrorOut},
                        502: {"model": ErrorOut, "description": "spotify_error: Spotify refused the request"}})
async def download_track(body: DownloadRequest, request: Request, user: HeavyUser, session: SessionDep,
                         settings: SettingsDep) -> Envelope[JobQueued]:
    """Enqueues a download of the link's audio; follow it on `/socket` or poll `GET /api/download/job/{id}`.

    A Spotify track link creates (or refreshes) the track in the library and searches for its audio;
    `source_url` skips the search and downloads that link instead."""
    url = body.url.strip()
    if _is_spotify(url):
        return await _download_spotify(url, body, request, user.id, session, settings)
    url = _check_url(url)
    if body.source_url:
        raise InvalidInput("source_url only goes with a Spotify link; put the link to download in url",
                           details={"source_url": "only for Spotify links"})
    track = Track(user_id=user.id, title=title_from_url(url), source_url=url)
    session.add(track)
    await session.flush()
    job = await jobs.create_job(session, request.app.state.events, user.id, "download", track.id,
                                {"url": url, "quality": body.quality, "placeholder_title": True})
    await enqueue_async("download", job.id)
    return Envelope(data=JobQueued(job_id=job.id, track_id=track.id))


async def _download_spotify(url: str, body: DownloadRequest, request: Request, user_id: uuid.UUID, session: SessionDep,
                            settings: SettingsDep) -> Envelope[JobQueued]:
    ref = spotify.parse_spotify_url(url)  # 400 invalid_url
    if ref.kind != "track":
        raise InvalidInput(
            f"This is a Spotify {ref.kind} link. Fetch its tracks with POST /api/spotify/fetch, then download "
            "them one by one with their track links", details={"url": f"a Spotify {ref.kind}, not a track"})
    source = _check_source(body.source_url) if body.source_url else None
    track, fetched = await spotify.track_for_download(session, user_id, ref, spotify.get_catalog(settings))
    params = {"url": ref.url, "spotify_id": ref.id, "quality": body.quality, "source_url": source,
              "fetch_metadata": not fetched}
    job = await jobs.create_job(session, request.app.state.events, user_id, "download", track.id, params)
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
