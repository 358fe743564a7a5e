"""Starting jobs: validate, create the ``queued`` Job row, enqueue it.

One place for what the REST routes and the pages both do, so a button on a page
and an API call start exactly the same job with exactly the same checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from core import jobs, lalalai_account, processing
from core.analysis import parse_features
from core.analysis.sources import audio_source
from core.events import EventLog
from core.separation.catalog import DEFAULT_ENGINE, DEFAULT_MODEL
from core.settings import Settings
from data.models import Job
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
    track = await processing.separable_track(session, user_id, track_id)
    if engine == processing.LALALAI:
        await lalalai_account.license_key(session, user_id, settings)
    job = await jobs.create_job(session, events, user_id, processing.KIND, track.id,
                                processing.job_params(model, engine))
    await enqueue_async(processing.KIND, job.id)
    return job
