"""What a processing (stem separation) job takes and gives.

The REST route, the pages and the worker all speak about a separation the same way: a track of the
user's whose audio is on disk, a catalogue model and an engine (demucs on this machine, or the
lalal.ai cloud API with the user's own license key). This module holds those checks, the job's
params, and the shape of its result, so a refusal reads the same wherever it is raised.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from core.separation.catalog import DEFAULT_ENGINE, DEFAULT_MODEL, ENGINES, MODEL_NAMES

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


def job_params(model: str = DEFAULT_MODEL, engine: str = DEFAULT_ENGINE) -> dict[str, Any]:
    """What a processing job is asked to do. lalal.ai jobs add their task id, the minutes lalal.ai
    charged and which key they ran on once the task exists (core/lalalai_account.py reads them)."""
    return {"model": model, "engine": engine}


def job_result(model: str, stems: list[dict[str, Any]]) -> dict[str, Any]:
    """``Job.result`` and the ``job:completed`` payload: what ``GET /api/processing/job/:id`` shows."""
    return {"model": model, "stems": stems}
