"""The ``download`` job: fetch a link's audio into the track's folder and fill in the track.

Thin by design: core/downloader.py does the work; this body wires the job's params, progress and
partial-file bookkeeping to it and stores the outcome on the ``Track`` row.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from core.downloader import DEFAULT_QUALITY, DownloadedAudio, download_audio
from core.progress import BadInput
from data.db import session_scope
from data.models import Track, utcnow
from workers.registry import JobContext, register


def public_url(relative: str) -> str:
    return "/files/" + quote(relative)


async def _load_track(track_id: uuid.UUID) -> Track | None:
    async with session_scope() as session:
        return await session.get(Track, track_id)


async def _store_audio(track_id: uuid.UUID, rel_path: str, audio: DownloadedAudio, url: str) -> None:
    async with session_scope() as session:
        track = await session.get(Track, track_id)
        if track is None:
            raise BadInput("The track was deleted while it was downloading")
        track.title = audio.title[:500]
        if audio.artist and not track.artist:
            track.artist = audio.artist[:500]
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


@register("download")
def download(ctx: JobContext) -> dict[str, Any]:
    url = str(ctx.params.get("url") or "")
    if not url or ctx.track_id is None:
        raise BadInput("The download job has no link to fetch")
    track = ctx.run(_load_track(ctx.track_id))
    if track is None:
        raise BadInput("The track of this download no longer exists")
    # Partial files live in a per-job folder next to the final one, removed if the job does not complete.
    track_dir = ctx.store.track_dir(ctx.track_id)
    work = ctx.add_partial(track_dir / f".partial-{ctx.job_id}")
    audio = download_audio(
        url, track_dir, str(ctx.params.get("quality") or DEFAULT_QUALITY), ctx.progress, work_dir=work,
        title="" if ctx.params.get("placeholder_title") else track.title, artist=track.artist,
        socket_timeout=ctx.settings.download_socket_timeout_s,
    )
    ctx.add_partial(audio.path)  # until the track row points at it
    rel_path = ctx.store.relative(audio.path)
    ctx.run(_store_audio(ctx.track_id, rel_path, audio, url))
    ctx.partial_paths.remove(audio.path)
    ctx.store.remove_tree(work)
    return {"output_path": public_url(rel_path), "file_size": audio.size}
