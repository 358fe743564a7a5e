"""What a processing (stem separation) job takes and gives.

The REST route, the pages and the worker all speak about a separation the same way: a track of the
user's whose audio is on disk, a catalogue model and an engine (demucs on this machine, or the
lalal.ai cloud API with the user's own license key). This module holds those checks, the job's
params, and the shape of its result, so a refusal reads the same wherever it is raised.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from core.separation.catalog import DEFAULT_ENGINE, DEFAULT_MODEL, ENGINES, MODEL_NAMES
from data.models import Track

KIND = "processing"
LOCAL, LALALAI = "local", "lalalai"


def check_choice(model: str, engine: str) -> tuple[str, str]:
    """The model and engine, or ``InvalidInput`` whose details list the allowed values."""
    details: dict[str, str] = {}
    if model not in MODEL_NAMES:
        details["model"] = f"Unknown model {model!r}: choose one of {', '.join(MODEL_NAMES)}"
    if engine not in ENGINES:
        details["engine"] = f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}"
    if details:
        raise InvalidInput("; ".join(details.values()), details=details)
    return model, engine


async def separable_track(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> Track:
    """The user's track, ready to separate: ``NotFound`` for a missing or foreign track (the same
    answer, so ids of other users reveal nothing), ``Conflict`` ``audio_not_ready`` while its audio
    has not arrived (a Spotify import not downloaded yet, a download still running or failed)."""
    track = await session.get(Track, track_id)
    if track is None or track.user_id != user_id:
        raise NotFound("track")
    if not track.audio_path:
        raise Conflict("The track's audio is not there yet; download it first, then separate it",
                       code="audio_not_ready")
    return track


def job_params(model: str = DEFAULT_MODEL, engine: str = DEFAULT_ENGINE) -> dict[str, Any]:
    """What a processing job is asked to do. lalal.ai jobs add their task id, the minutes lalal.ai
    charged and which key they ran on once the task exists (core/lalalai_account.py reads them)."""
    return {"model": model, "engine": engine}


def job_result(model: str, stems: list[dict[str, Any]]) -> dict[str, Any]:
    """``Job.result`` and the ``job:completed`` payload: what ``GET /api/processing/job/:id`` shows."""
    return {"model": model, "stems": stems}
