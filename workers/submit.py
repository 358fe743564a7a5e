"""Starting jobs: validate, create the ``queued`` Job row, enqueue it.

One place for what the REST routes and the pages both do, so a button on a page
and an API call start exactly the same job with exactly the same checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from urllib.parse import urlparse

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import jobs, lalalai_account, processing, spotify, tracks
from core.analysis import check_tempo_range, parse_features
from core.analysis.sources import audio_source
from core.downloader import DEFAULT_QUALITY, title_from_url
from core.errors import Conflict, InvalidInput, NotFound
from core.events import EventLog
from core.separation.catalog import DEFAULT_ENGINE, DEFAULT_MODEL
from core.settings import Settings
from core.spotify.share_links import resolve_share_link
from core.spotify.urls import is_share_link
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
    tempo_range: tuple[float, float] | None = None,
) -> Job:
    """Analyse a track's audio or one stem, with the beat counted inside ``tempo_range`` (min, max BPM) when given.
    Unknown features or a range that is not an octave within 30-300 BPM: InvalidInput; no audio yet: Conflict."""
    parsed = parse_features(list(features))
    if tempo_range is not None:
        tempo_range = check_tempo_range(*tempo_range)
    source = await audio_source(session, user_id, track_id=track_id, stem_id=stem_id)
    params: dict[str, object] = {"features": list(parsed)}
    if tempo_range is not None:
        params["tempo_range"] = list(tempo_range)
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
    preview: tuple[float | None, float] | None = None,
) -> Job:
    """Separate a track into stems, or with ``preview`` (start or None for the loudest part, duration in
    seconds) only part of it. Unknown model or engine: InvalidInput listing the allowed values; a preview
    window outside the track: InvalidInput naming the field; not the user's track: NotFound; no audio yet:
    Conflict ``audio_not_ready``; the lalal.ai engine without a stored license key: LalalaiKeyError (401)
    saying where to set it."""
    model, engine = processing.check_choice(model, engine)
    track = await tracks.track_with_audio(session, user_id, track_id, "separate")
    if preview is not None:
        preview = processing.check_preview(preview[0], preview[1],
                                           float(track.duration) if track.duration else None)
    if engine == processing.LALALAI:
        await lalalai_account.license_key(session, user_id, settings)
    job = await jobs.create_job(
        session, events, user_id, processing.KIND, track.id, processing.job_params(model, engine, preview)
    )
    await enqueue_async(processing.KIND, job.id)
    return job


def is_spotify_link(url: str, share_link_hosts: Iterable[str] = ()) -> bool:
    """Whether a pasted link is Spotify's: a ``spotify:`` URI, a link on ``spotify.com`` or a subdomain, or a
    share link on one of ``share_link_hosts`` (``settings.spotify_share_link_hosts``, e.g. ``spotify.link``)."""
    url = url.strip()
    try:
        host = (urlparse(url if "://" in url else "https://" + url).hostname or "").lower()
    except ValueError:
        host = ""
    return (url.lower().startswith("spotify:") or host == "spotify.com" or host.endswith(".spotify.com")
            or is_share_link(url, share_link_hosts))


def _check_url(url: str, field: str = "url") -> str:
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(f"The {field} must be an http(s) URL", details={field: "must be an http(s) URL"})
    return url


def _check_source(url: str, settings: Settings) -> str:
    url = _check_url(url, "source_url")
    if is_spotify_link(url, settings.spotify_share_link_hosts):
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
    Spotify albums and playlists are refused with a pointer to fetching them: one job per request.

    A share link of the Spotify app (``settings.spotify_share_link_hosts``) is resolved first
    (``resolve_share_link``: ``InvalidSpotifyUrl`` 400 for a dead or foreign link, ``SpotifyError`` 502/504
    when the share-link host fails or is slow); other Spotify links that are no track, album or playlist
    (episodes, artists, ...) are ``InvalidSpotifyUrl`` naming what they are."""
    url = await resolve_share_link(url.strip(), settings)
    if not is_spotify_link(url, settings.spotify_share_link_hosts):
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
        source = _check_source(source_url, settings) if source_url else None
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


async def submit_library_downloads(session: AsyncSession, events: EventLog, user_id: uuid.UUID,
                                   tracks_: Sequence[Track], *, quality: str = DEFAULT_QUALITY) -> list[Job]:
    """Download the audio of Spotify tracks already stored in the library (their metadata is fresh, so the
    jobs do not ask Spotify again). Tracks that have audio, or a download queued or running, are left as
    they are: importing a playlist twice downloads nothing twice. Returns the new jobs, in track order."""
    ids = [t.id for t in tracks_ if t.audio_path is None and t.spotify_id]
    busy: set[uuid.UUID] = set()
    for start in range(0, len(ids), 500):
        rows = await session.exec(select(Job.track_id).where(
            col(Job.user_id) == user_id, col(Job.kind) == "download", col(Job.track_id).in_(ids[start:start + 500]),
            col(Job.status).in_((jobs.QUEUED, *jobs.RUNNING))))
        busy.update(t for t in rows.all() if t is not None)
    created: list[Job] = []
    for track in tracks_:
        if track.audio_path is not None or not track.spotify_id or track.id in busy:
            continue
        busy.add(track.id)
        params = {"url": track.spotify_url or f"https://open.spotify.com/track/{track.spotify_id}",
                  "spotify_id": track.spotify_id, "quality": quality, "source_url": None, "fetch_metadata": False}
        created.append(await jobs.create_job(session, events, user_id, "download", track.id, params))
    for job in created:
        await enqueue_async("download", job.id)
    return created


async def submit_spotify_import(session: AsyncSession, events: EventLog, user_id: uuid.UUID,
                                found: Sequence[spotify.SpotifyTrack], *, only: Sequence[str] | None = None,
                                quality: str = DEFAULT_QUALITY, download: bool = True) -> tuple[list[Track], list[Job]]:
    """Store Spotify tracks (``only`` those Spotify ids, when given) in the library and queue their downloads:
    ``(tracks in the given order, new download jobs)``. What the "Your Spotify" panel and
    ``POST /api/spotify/import`` both do."""
    wanted = None if only is None else set(only)
    chosen = list(found) if wanted is None else [t for t in found if t.spotify_id in wanted]
    rows = await spotify.save_tracks(session, user_id, chosen)
    created = await submit_library_downloads(session, events, user_id, rows, quality=quality) if download else []
    return rows, created


async def retry_job(session: AsyncSession, events: EventLog, user_id: uuid.UUID, settings: Settings,
                    job_id: uuid.UUID) -> Job:
    """Start a failed or cancelled job again: a new ``queued`` job of the same kind, on the same track, with
    the same parameters, whose ``params["retry_of"]`` names the old one (which stays as it was).

    The new job goes through the checks a new one of its kind goes through: a separation needs the track's
    audio (Conflict ``audio_not_ready``), a known model and engine, and for lalal.ai a stored key (401); an
    analysis needs its track's audio or its stem; a download's links must still be http(s) links. Someone
    else's job is NotFound; a job that is not failed or cancelled is Conflict ``job_not_retryable``; one
    whose retry is still running is Conflict ``job_already_retried``; one whose track or stem is gone is
    Conflict ``job_source_gone``."""
    old = await jobs.job_to_retry(session, user_id, job_id)
    params = {k: v for k, v in (old.params or {}).items() if k != jobs.RETRY_OF}
    if old.track_id is not None:
        track = await session.get(Track, old.track_id)
        if track is None or track.user_id != user_id:
            raise Conflict("The track of this job no longer exists; there is nothing to retry",
                           code="job_source_gone")
    if old.kind == "download":
        if old.track_id is None:
            raise Conflict("This download has no track to fill; start a new download", code="job_source_gone")
        if params.get("spotify_id"):
            source = params.get("source_url")
            params["source_url"] = _check_source(str(source), settings) if source else None
        else:
            params["url"] = _check_url(str(params.get("url") or ""))
    elif old.kind == processing.KIND:
        if old.track_id is None:
            raise Conflict("This separation has no track; start a new one", code="job_source_gone")
        model, engine = processing.check_choice(str(params.get("model") or DEFAULT_MODEL),
                                                str(params.get("engine") or DEFAULT_ENGINE))
        await tracks.track_with_audio(session, user_id, old.track_id, "separate")
        if engine == processing.LALALAI:
            await lalalai_account.license_key(session, user_id, settings)
        params = processing.job_params(model, engine)  # lalal.ai's task, minutes and key belong to the old one
    else:
        features = parse_features(params.get("features"))
        stem_id = params.get("stem_id")
        try:
            source = await audio_source(session, user_id, track_id=None if stem_id else old.track_id,
                                        stem_id=uuid.UUID(str(stem_id)) if stem_id else None)
        except (NotFound, ValueError) as exc:
            what = "stem" if stem_id else "track"
            raise Conflict(f"The {what} this analysis measured no longer exists; there is nothing to retry",
                           code="job_source_gone") from exc
        params = {"features": list(features)}
        if source.stem is not None:
            params["stem_id"] = str(source.stem.id)
    params[jobs.RETRY_OF] = str(old.id)
    job = await jobs.create_job(session, events, user_id, old.kind, old.track_id, params)
    await enqueue_async(old.kind, job.id)
    return job
