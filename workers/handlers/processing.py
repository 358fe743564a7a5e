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

A preview (params ``preview``: ``start`` or None, ``duration``) separates only that window of the track:
the start defaults to its loudest stretch (core/preview_window.py, from the track's analysis when it has
an energy curve), the window used is written back into the params, and the stems are stored as a preview
(core/stems.py keeps them apart from the full stems). Locally the window's stems are exactly that part of a
full separation (the engine runs only the chunks that reach into it); lalal.ai gets only the window's audio.

Params: ``model``, ``engine``, ``preview`` (core/processing.job_params).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from core import lalalai_account, preview_window, stems
from core.analysis import results as analysis_results
from core.audio_io import probe
from core.daw.waveforms import draw_waveforms
from core.errors import NotFound, StemForgeError
from core.processing import LALALAI, LOCAL, check_choice, check_preview, job_result
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
                files: list[tuple[str, str, str, int]], preview: tuple[float, float] | None) -> list[dict[str, Any]]:
    async with session_scope() as session:
        rows = await stems.replace_job_stems(session, user_id=ctx.user_id, track_id=track_id, job_id=ctx.job_id,
                                             engine=engine, model=model, files=files, preview=preview)
        return [stems.record(row) for row in rows]


async def _energy_curve(ctx: JobContext, track_id: uuid.UUID) -> tuple[list[float], float] | None:
    """The RMS curve and its frame rate from the track's newest analysis, when it measured energy."""
    async with session_scope() as session:
        try:
            row = await analysis_results.latest(session, ctx.user_id, track_id=track_id)
        except NotFound:
            return None
    rms = ((row.data or {}).get("features") or {}).get("rms")
    rate = (row.data or {}).get("frame_rate")
    return (rms, float(rate)) if isinstance(rms, list) and rms and rate else None


def _preview_window(ctx: JobContext, track: Track, audio: Path, progress: ProgressFn,
                    nudge: Callable[[float, float, float], float] | None = None) -> tuple[float, float] | None:
    """The (start, end) seconds a preview job separates, written back into its params; None for a full job.
    ``nudge(start, duration, track_seconds)`` may move a default (loudest) start a little, to where the engine
    has less work."""
    asked = ctx.params.get("preview")
    if not asked:
        return None
    try:
        start, duration = check_preview(asked.get("start"), float(asked.get("duration") or 0), None)
        seconds = probe(audio).duration
    except StemForgeError as exc:  # params edited by hand, or audio that cannot be read
        raise BadInput(exc.message) from exc
    if start is None:
        progress(0, "Finding the loudest part of the track")
        curve = ctx.run(_energy_curve(ctx, track.id))
        start = (preview_window.loudest_start(curve[0], curve[1], duration, seconds) if curve is not None
                 else preview_window.loudest_start_of_file(audio, duration))
        if nudge is not None:
            start = nudge(start, duration, seconds)
    start = min(start, max(0.0, seconds - duration))
    if start + duration > seconds + 0.5:  # the track is shorter than the preview (its length was unknown)
        raise BadInput(f"The track is only {seconds:.1f} s long: too short for a {duration:g} s preview")
    if asked.get("start") is not None and asked["start"] > start + 1e-6:
        raise BadInput(f"The preview starts at {asked['start']:g} s, but the track is only {seconds:.1f} s long")
    window = (round(start, 3), round(min(seconds, start + duration), 3))
    ctx.run(_remember_task(ctx.job_id, {"preview": {**asked, "start": window[0], "end": window[1]}}))
    return window


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


def _window_file(audio: Path, window: tuple[float, float], folder: Path) -> Path:
    """The window's samples of ``audio`` as a 16-bit WAV in ``folder`` (what lalal.ai gets for a preview)."""
    import soundfile as sf

    with sf.SoundFile(str(audio)) as f:
        f.seek(int(window[0] * f.samplerate))
        data = f.read(int((window[1] - window[0]) * f.samplerate), dtype="float32", always_2d=True)
        rate = f.samplerate
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "preview-source.wav"
    sf.write(str(clip), data, rate, subtype="PCM_16")
    return clip


def _separate_lalalai(ctx: JobContext, audio: Path, model: str, progress: _Watched,
                      window: tuple[float, float] | None) -> list[StemFile]:
    key = ctx.run(_license_key(ctx))
    if window is not None:
        # lalal.ai's API has no preview of its own: it gets only the window's audio (and charges only for that).
        audio = _window_file(audio, window, ctx.job_dir.parent / f"{ctx.job_dir.name}-source")
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
    local = get_engine(ctx.settings) if engine == LOCAL else None
    window = _preview_window(ctx, track, audio, progress,
                             (lambda *a: local.fewest_chunks_start(model, *a)) if local is not None else None)
    if local is not None:
        files = local.separate(audio, ctx.job_dir, model, progress, fmt=ctx.settings.stem_format, window=window)
    else:
        assert engine == LALALAI
        try:
            files = _separate_lalalai(ctx, audio, model, progress, window)
        finally:
            ctx.store.remove_tree(ctx.job_dir.parent / f"{ctx.job_dir.name}-source")
    # The editor draws the stems' waveforms from these at once (cached next to each stem).
    draw_waveforms([f.path for f in files], scaled(ctx.progress, SEPARATION_SHARE, SEPARATION_SHARE + 2))
    ctx.progress(SEPARATION_SHARE + 2, "Saving the stems")
    rows = [(f.stem_type, ctx.store.relative(f.path), f.format, f.size) for f in files]
    try:
        records = ctx.run(_save(ctx, track.id, engine, model, rows, window))
    except IntegrityError as exc:  # the track went away while it was being separated
        raise BadInput("The track was deleted while it was being separated") from exc
    return job_result(model, records, window)
