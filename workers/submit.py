"""Starting jobs: validate, create the ``queued`` Job row, enqueue it.

One place for what the REST routes and the pages both do, so a button on a page
and an API call start exactly the same job with exactly the same checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import urlparse

from sqlmodel.ext.asyncio.session import AsyncSession

from core import jobs, lalalai_account, processing, spotify, tracks
from core.analysis import parse_features
from core.analysis.sources import audio_source
from core.downloader import DEFAULT_QUALITY, title_from_url
from core.errors import InvalidInput
from core.events import EventLog
from core.separation.catalog import DEFAULT_ENGINE, DEFAULT_MODEL
from core.settings import Settings
from data.models import Job, Track
from workers.tasks import enqueue_async


async def submit_analysis(
    session: AsyncSession,
    events: EventLog,
    user_id: uuid.UUID,
    *,
    track_id: uuid.UUID | None = None,
    stem_id: uuid.UUID | None = None,
    features: Sequence[str] = ("all",),
) -> Job:
    """Analyse a track's audio or one stem. Unknown features: InvalidInput; no audio yet: Conflict."""
    parsed = parse_features(list(features))
    source = await audio_source(session, user_id, track_id=track_id, stem_id=stem_id)
    params: dict[str, object] = {"features": list(parsed)}
    if source.stem is not None:
        params["stem_id"] = str(source.stem.id)
    job = await jobs.create_job(session, events, user_id, "analysis", source.track.id, params)
    await enqueue_async("analysis", job.id)
    return job


async def submit_processing(
    session: AsyncSession,
    events: EventLog,
    user_id: uuid.UUID,
    settings: Settings,
    *,
    track_id: uuid.UUID,
    model: str = DEFAULT_MODEL,
    engine: str = DEFAULT_ENGINE,
) -> Job:
    """Separate a track into stems. Unknown model or engine: InvalidInput listing the allowed values;
    not the user's track: NotFound; no audio yet: Conflict ``audio_not_ready``; the lalal.ai engine
    without a stored license key: LalalaiKeyError (401) saying where to set it."""
    model, engine = processing.check_choice(model, engine)
    track = await tracks.track_with_audio(session, user_id, track_id, "separate")
    if engine == processing.LALALAI:
        await lalalai_account.license_key(session, user_id, settings)
    job = await jobs.create_job(
        session, events, user_id, processing.KIND, track.id, processing.job_params(model, engine)
    )
    await enqueue_async(processing.KIND, job.id)
    return job


def is_spotify_link(url: str) -> bool:
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
    if is_spotify_link(url):
        raise InvalidInput(
            "source_url must be a link to the audio (a video page or an audio file), not Spotify",
            details={"source_url": "Spotify has no downloadable audio"},
        )
    return url


async def submit_download(
    session: AsyncSession,
    events: EventLog,
    user_id: uuid.UUID,
    settings: Settings,
    *,
    url: str,
    quality: str = DEFAULT_QUALITY,
    source_url: str | None = None,
) -> Job:
    """Download a link's audio. A Spotify track link creates (or refreshes) the track from Spotify and the
    job searches for its audio unless ``source_url`` names it; any other http(s) link becomes a new track.
    Spotify albums and playlists are refused with a pointer to fetching them: one job per request."""
    url = url.strip()
    if not is_spotify_link(url):
        url = _check_url(url)
        if source_url:
            raise InvalidInput(
                "source_url only goes with a Spotify link; put the link to download in url",
                details={"source_url": "only for Spotify links"},
            )
        track = Track(user_id=user_id, title=title_from_url(url), source_url=url)
        session.add(track)
        await session.flush()
        params: dict[str, object] = {"url": url, "quality": quality, "placeholder_title": True}
    else:
        ref = spotify.parse_spotify_url(url)  # invalid_url
        if ref.kind != "track":
            raise InvalidInput(
                f"This is a Spotify {ref.kind} link. Fetch its tracks with POST /api/spotify/fetch, then download "
                "them one by one with their track links",
                details={"url": f"a Spotify {ref.kind}, not a track"},
            )
        source = _check_source(source_url) if source_url else None
        track, fetched = await spotify.track_for_download(session, user_id, ref, spotify.get_catalog(settings))
        params = {
            "url": ref.url,
            "spotify_id": ref.id,
            "quality": quality,
            "source_url": source,
            "fetch_metadata": not fetched,
        }
    job = await jobs.create_job(session, events, user_id, "download", track.id, params)
    await enqueue_async("download", job.id)
    return job
