"""The ``download`` job: fetch a link's audio into the track's folder and fill in the track.

The route (core/api/routes/download.py) sends one of two kinds of params:

* ``url``: any link yt-dlp understands; title and artist come from the source.
* ``spotify_id`` (with the Spotify ``url``): the track's metadata is in the library already, unless
  Spotify was briefly unavailable at request time (``fetch_metadata``: fetched here, Spotify faults
  mapped by ``SpotifyError.as_job_error`` onto retry-later or fail-now). The audio comes from the
  user's ``source_url`` when given, else from a search scored against Spotify's title, artist and
  duration (core/search.find_source). The chosen source and its score are stored on the track
  before the download starts, so a user who disagrees sees what was used.

Thin by design: core/ does the work; this body wires params, progress and partial-file bookkeeping to
it and stores the outcome on the ``Track`` row.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from core.daw.peaks import discard_peaks
from core.daw.waveforms import draw_waveforms
from core.downloader import DEFAULT_QUALITY, DownloadedAudio, download_audio
from core.progress import BadInput, scaled
from core.search import find_source
from core.spotify import SpotifyError, SpotifyNotConfigured, SpotifyTrack, get_catalog, save_tracks
from data.db import session_scope
from data.files import FileStore, UnsafePath, public_url
from data.models import Track, utcnow
from workers.registry import JobContext, register

# A Spotify track's share of the job's 0-100: metadata (when still missing), search, then the download.
METADATA_END = 2.0
SEARCH_END = 8.0
# The rest draws the waveform peaks the editor and the track page show.
DOWNLOAD_END = 98.0


async def _load_track(track_id: uuid.UUID) -> Track | None:
    async with session_scope() as session:
        return await session.get(Track, track_id)


async def _save_metadata(user_id: uuid.UUID, meta: SpotifyTrack) -> Track:
    async with session_scope() as session:
        (row,) = await save_tracks(session, user_id, [meta])
        return row


async def _store_source(track_id: uuid.UUID, url: str, score: float | None) -> None:
    async with session_scope() as session:
        track = await session.get(Track, track_id)
        if track is None:
            raise BadInput("The track was deleted while its audio was being looked for")
        track.source_url = url[:2000]
        track.source_score = score
        track.updated_at = utcnow()
        session.add(track)
        await session.commit()


async def _store_audio(track_id: uuid.UUID, rel_path: str, audio: DownloadedAudio, url: str,
                       store: FileStore) -> None:
    async with session_scope() as session:
        track = await session.get(Track, track_id)
        if track is None:
            raise BadInput("The track was deleted while it was downloading")
        previous = track.audio_path
        track.title = audio.title[:500]
        if audio.artist and not track.artist:
            track.artist = audio.artist[:500]
        if audio.album and not track.album:
            track.album = audio.album[:500]
        track.audio_path = rel_path
        track.audio_format = audio.format
        track.file_size = audio.size
        track.duration = round(audio.duration)
        track.sample_rate = audio.sample_rate
        track.channels = audio.channels
        track.source_url = track.source_url or url
        track.updated_at = utcnow()
        session.add(track)
        await session.commit()
    if previous and previous != rel_path:  # a re-download in another format replaced the old file
        with contextlib.suppress(UnsafePath):
            discard_peaks(store.resolve(previous))
        store.remove_file(previous)


def _spotify_source(ctx: JobContext, track: Track, spotify_id: str) -> tuple[Track, str, float | None]:
    """The track with Spotify's metadata, the URL to download its audio from, and the match score
    (None for a source the user chose)."""
    if ctx.params.get("fetch_metadata"):
        ctx.progress(0, "Fetching the track from Spotify...")
        try:
            meta = get_catalog(ctx.settings).track(spotify_id)
        except SpotifyError as exc:
            raise exc.as_job_error() from exc
        except SpotifyNotConfigured as exc:
            raise BadInput(exc.message) from exc
        track = ctx.run(_save_metadata(ctx.user_id, meta))
    override = ctx.params.get("source_url")
    if override:
        url, score = str(override), None
    else:
        ctx.progress(METADATA_END, f"Searching for {track.artist} - {track.title}...")
        match = find_source(track.title, track.artist, track.duration, album=track.album, settings=ctx.settings)
        url, score = match.url, round(match.score, 4)
    ctx.run(_store_source(track.id, url, score))
    ctx.progress(SEARCH_END, "Found the audio" if score is not None else "Using the source you chose")
    return track, url, score


@register("download")
def download(ctx: JobContext) -> dict[str, Any]:
    if ctx.track_id is None:
        raise BadInput("The download job has no track to fill")
    track = ctx.run(_load_track(ctx.track_id))
    if track is None:
        raise BadInput("The track of this download no longer exists")
    spotify_id = ctx.params.get("spotify_id")
    score: float | None = None
    if spotify_id:
        track, url, score = _spotify_source(ctx, track, str(spotify_id))
        progress = scaled(ctx.progress, SEARCH_END, DOWNLOAD_END)
        title, artist, album = track.title, track.artist, track.album
    else:
        url = str(ctx.params.get("url") or "")
        if not url:
            raise BadInput("The download job has no link to fetch")
        progress = scaled(ctx.progress, 0, DOWNLOAD_END)
        title = "" if ctx.params.get("placeholder_title") else track.title
        artist, album = track.artist, track.album
    # Partial files live in a per-job folder next to the final one, removed if the job does not complete.
    track_dir = ctx.store.track_dir(ctx.track_id)
    work = ctx.add_partial(track_dir / f".partial-{ctx.job_id}")
    audio = download_audio(
        url, track_dir, str(ctx.params.get("quality") or DEFAULT_QUALITY), progress, work_dir=work,
        title=title, artist=artist, album=album, socket_timeout=ctx.settings.download_socket_timeout_s,
    )
    ctx.add_partial(audio.path)  # until the track row points at it
    draw_waveforms([audio.path], scaled(ctx.progress, DOWNLOAD_END, 100))
    rel_path = ctx.store.relative(audio.path)
    ctx.run(_store_audio(ctx.track_id, rel_path, audio, url, ctx.store))
    ctx.partial_paths.remove(audio.path)
    ctx.store.remove_tree(work)
    return {"output_path": public_url(rel_path), "file_size": audio.size, "source_url": url,
            "source_score": score}
