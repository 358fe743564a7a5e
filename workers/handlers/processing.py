"""The ``processing`` job: separate a track's audio into stems, locally or on lalal.ai.

Thin by design: core/separation does the work. This body finds the track again (it may have been
deleted or lost its audio since the job was queued), runs the engine the job names with the job's
progress, writes the stems into ``stems/<job_id>/<stem>.<format>`` (``ctx.job_dir``, removed by the
runner if the job fails or is cancelled), stores one ``Stem`` row per file and returns
``{"model", "stems"}``: ``Job.result``, the ``job:completed`` payload and what
``GET /api/processing/job/:id`` lists.

* ``local``: demucs in this worker process; ``get_engine`` keeps loaded models warm between jobs.
* ``lalalai``: the user's stored license key, decrypted only here. As soon as lalal.ai has a task for
  the job, its id, the minutes it costs and the key's fingerprint go into the job's params, so
  ``POST /api/lalalai/cancel`` can find the job and the quota can count the minutes.

Params: ``model``, ``engine`` (core/processing.job_params).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from core import lalalai_account, stems
from core.audio_io import probe
from core.daw.waveforms import draw_waveforms
from core.errors import StemForgeError
from core.processing import LALALAI, LOCAL, check_choice, job_result
from core.progress import BadInput, JobCancelled, ProgressFn, scaled
from core.separation import StemFile
from core.separation import lalalai as cloud
from core.separation.catalog import DEFAULT_ENGINE, DEFAULT_MODEL
from core.separation.local import get_engine
from data.db import session_scope
from data.files import UnsafePath
from data.models import Job, Track
from workers.registry import JobContext, register

# The engine's 0-100 maps onto this share of the job; storing the stems takes the rest.
SEPARATION_SHARE = 97


async def _load_track(track_id: uuid.UUID) -> Track | None:
    async with session_scope() as session:
        return await session.get(Track, track_id)


async def _license_key(ctx: JobContext) -> str:
    async with session_scope() as session:
        return await lalalai_account.license_key(session, ctx.user_id, ctx.settings)


async def _remember_task(job_id: uuid.UUID, extra: dict[str, Any]) -> None:
    """Merge ``extra`` into the job's params (a plain UPDATE: the state machine's columns stay untouched)."""
    async with session_scope() as session:
        job = await session.get(Job, job_id)
        if job is None:
            return
        await session.exec(update(Job).where(Job.id == job_id)  # type: ignore[call-overload]
                           .values(params={**(job.params or {}), **extra})
                           .execution_options(synchronize_session=False))
        await session.commit()


async def _save(ctx: JobContext, track_id: uuid.UUID, engine: str, model: str,
                files: list[tuple[str, str, str, int]]) -> list[dict[str, Any]]:
    async with session_scope() as session:
        rows = await stems.replace_job_stems(session, user_id=ctx.user_id, track_id=track_id, job_id=ctx.job_id,
                                             engine=engine, model=model, files=files)
        return [stems.record(row) for row in rows]


class _Watched:
    """The job's progress callback, remembering whether StemForge itself asked the job to stop (so a
    cancellation that came from lalal.ai's side can be told apart)."""

    def __init__(self, progress: ProgressFn) -> None:
        self.progress = progress
        self.cancelled_here = False
        self.last = 0.0

    def __call__(self, percent: float, message: str = "") -> None:
        try:
            self.progress(percent, message)
        except JobCancelled:
            self.cancelled_here = True
            raise
        self.last = max(self.last, percent)


def _separate_lalalai(ctx: JobContext, audio: Path, model: str, progress: _Watched) -> list[StemFile]:
    key = ctx.run(_license_key(ctx))
    try:
        minutes = round(cloud.charged_minutes(probe(audio).duration, model), 4)
    except StemForgeError as exc:  # not audio at all: say so before anything is uploaded
        raise BadInput(f"The track's audio cannot be read: {exc.message}") from exc

    def on_task(task_id: str) -> None:
        ctx.run(_remember_task(ctx.job_id, {"lalalai_task_id": task_id, "lalalai_minutes": minutes,
                                            "lalalai_key_id": lalalai_account.key_id(key, ctx.settings)}))

    try:
        return cloud.separate(audio, ctx.job_dir, model, key, progress, settings=ctx.settings,
                              fmt=ctx.settings.stem_format, on_task=on_task)
    except JobCancelled:
        if progress.cancelled_here:
            raise
        # lalal.ai says the task was cancelled. Through StemForge's cancel routes the job is cancelled
        # first, and this progress call notices (raising JobCancelled); otherwise someone stopped the
        # task on lalal.ai's side, and the job cannot finish.
        progress(progress.last, "The lalal.ai task was cancelled")
        raise BadInput("The lalal.ai task was cancelled outside StemForge (on lalal.ai, or by another "
                       "program using your license key); start the separation again") from None


@register("processing")
def processing(ctx: JobContext) -> dict[str, Any]:
    if ctx.track_id is None:
        raise BadInput("The processing job names no track to separate")
    try:
        model, engine = check_choice(str(ctx.params.get("model") or DEFAULT_MODEL),
                                     str(ctx.params.get("engine") or DEFAULT_ENGINE))
    except StemForgeError as exc:  # params a person edited by hand
        raise BadInput(exc.message) from exc
    track = ctx.run(_load_track(ctx.track_id))
    if track is None:
        raise BadInput("The track was deleted before it could be separated")
    if not track.audio_path:
        raise BadInput("The track has no audio to separate; download it first")
    try:
        audio = ctx.store.resolve(track.audio_path)
    except UnsafePath as exc:
        raise BadInput("The track's audio file is stored at an invalid path") from exc
    if not audio.is_file():
        raise BadInput("The track's audio file is missing on the server; download or upload it again")
    # A clean folder: an earlier attempt that died with its worker may have left partial files.
    ctx.store.remove_tree(ctx.job_dir)
    progress = _Watched(scaled(ctx.progress, 0, SEPARATION_SHARE))
    if engine == LOCAL:
        files = get_engine(ctx.settings).separate(audio, ctx.job_dir, model, progress, fmt=ctx.settings.stem_format)
    else:
        assert engine == LALALAI
        files = _separate_lalalai(ctx, audio, model, progress)
    # The editor draws the stems' waveforms from these at once (cached next to each stem).
    draw_waveforms([f.path for f in files], scaled(ctx.progress, SEPARATION_SHARE, SEPARATION_SHARE + 2))
    ctx.progress(SEPARATION_SHARE + 2, "Saving the stems")
    rows = [(f.stem_type, ctx.store.relative(f.path), f.format, f.size) for f in files]
    try:
        records = ctx.run(_save(ctx, track.id, engine, model, rows))
    except IntegrityError as exc:  # the track went away while it was being separated
        raise BadInput("The track was deleted while it was being separated") from exc
    return job_result(model, records)
