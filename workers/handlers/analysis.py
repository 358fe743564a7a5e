"""The ``analysis`` job: measure a track's audio (or one of its stems) and store the result.

Thin by design: core/analysis does the work. This body finds the audio again (the track or stem
may have been deleted since the job was queued), runs ``analyze`` with the job's progress, stores
one ``AnalysisResult`` row (typed columns for the scalars, JSON for the arrays) and returns the
result dict, which becomes ``Job.result`` and the ``job:completed`` payload.

Params: ``features`` (the normalised feature groups), for a stem ``stem_id``, and ``tempo_range`` ([min, max]
BPM) when the caller asked for one.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from core.analysis import analyze, check_tempo_range, parse_features, results
from core.analysis.sources import AudioSource, audio_source
from core.errors import InvalidInput, StemForgeError
from core.progress import BadInput, scaled
from data.db import session_scope
from data.files import UnsafePath
from workers.registry import JobContext, register

# The service's 0-100 maps onto this share of the job; storing the row takes the rest.
ANALYSIS_SHARE = 95


async def _source(user_id: uuid.UUID, track_id: uuid.UUID | None, stem_id: uuid.UUID | None) -> AudioSource:
    async with session_scope() as session:
        return await audio_source(session, user_id, track_id=None if stem_id else track_id, stem_id=stem_id)


async def _save(result: dict[str, Any], ctx: JobContext, source: AudioSource) -> None:
    async with session_scope() as session:
        await results.save(session, result, user_id=ctx.user_id, track_id=source.track.id,
                           stem_id=source.stem.id if source.stem else None, job_id=ctx.job_id)


def _stem_id(ctx: JobContext) -> uuid.UUID | None:
    value = ctx.params.get("stem_id")
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError as exc:
        raise BadInput(f"The analysis job names an invalid stem id: {value!r}") from exc


def _tempo_range(ctx: JobContext) -> tuple[float, float] | None:
    """The job's ``tempo_range`` (checked again: params may have been edited by hand), or None."""
    value = ctx.params.get("tempo_range")
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(isinstance(v, int | float) for v in value):
        raise InvalidInput(f"The analysis job's tempo range is not two numbers: {value!r}")
    return check_tempo_range(float(value[0]), float(value[1]))


@register("analysis")
def analysis(ctx: JobContext) -> dict[str, Any]:
    stem_id = _stem_id(ctx)
    if ctx.track_id is None and stem_id is None:
        raise BadInput("The analysis job names no track or stem to analyse")
    try:
        features = parse_features(ctx.params.get("features"))
        tempo_range = _tempo_range(ctx)
        source = ctx.run(_source(ctx.user_id, ctx.track_id, stem_id))
    except StemForgeError as exc:  # deleted meanwhile, or params a person edited by hand
        raise BadInput(f"Cannot analyse this: {exc.message}") from exc
    try:
        path = ctx.store.resolve(source.path)
    except UnsafePath as exc:
        raise BadInput(f"The audio file of {source.label} is stored at an invalid path") from exc
    result = analyze(path, features, scaled(ctx.progress, 0, ANALYSIS_SHARE), tempo_range)
    ctx.progress(ANALYSIS_SHARE + 2, "storing the result")
    try:
        ctx.run(_save(result, ctx, source))
    except IntegrityError as exc:  # the track or stem row went away while the audio was being measured
        raise BadInput(f"{source.label.capitalize()} was deleted while it was being analysed") from exc
    return result
