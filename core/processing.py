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
# A preview separates only part of the track: this many seconds (default, least, most).
PREVIEW_SECONDS, PREVIEW_MIN_SECONDS, PREVIEW_MAX_SECONDS = 20.0, 5.0, 60.0


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


def check_preview(start: float | None, duration: float, track_seconds: float | None) -> tuple[float | None, float]:
    """A preview window (start may be None: the worker picks the loudest part), or ``InvalidInput`` naming the
    field (``preview.start``, ``preview.duration``). ``track_seconds`` (None when unknown) bounds the window."""
    details: dict[str, str] = {}
    if not PREVIEW_MIN_SECONDS <= duration <= PREVIEW_MAX_SECONDS:
        details["preview.duration"] = f"A preview lasts {PREVIEW_MIN_SECONDS:g} to {PREVIEW_MAX_SECONDS:g} seconds"
    elif track_seconds is not None and duration > track_seconds:
        details["preview.duration"] = (f"The track is only {track_seconds:g} s long: preview at most "
                                       f"{track_seconds:g} s, or separate the whole track")
    if start is not None and start < 0:
        details["preview.start"] = "A preview starts at 0 s or later"
    elif start is not None and track_seconds is not None and not details and start + duration > track_seconds:
        details["preview.start"] = (f"{start:g}-{start + duration:g} s runs past the end of the track "
                                    f"({track_seconds:g} s); the latest start for {duration:g} s is "
                                    f"{max(0.0, track_seconds - duration):g} s")
    if details:
        raise InvalidInput(" ".join(f"{message}." for message in details.values()), details=details)
    return start, duration


def job_params(model: str = DEFAULT_MODEL, engine: str = DEFAULT_ENGINE,
               preview: tuple[float | None, float] | None = None) -> dict[str, Any]:
    """What a processing job is asked to do. ``preview`` (start or None, duration in seconds) asks for a preview
    of part of the track; the worker stores the window it used as ``preview.start``/``preview.end``. lalal.ai jobs
    add their task id, the minutes lalal.ai charged and which key they ran on once the task exists
    (core/lalalai_account.py reads them)."""
    params: dict[str, Any] = {"model": model, "engine": engine}
    if preview is not None:
        params["preview"] = {"start": preview[0], "duration": preview[1]}
    return params


def job_result(model: str, stems: list[dict[str, Any]], preview: tuple[float, float] | None = None) -> dict[str, Any]:
    """``Job.result`` and the ``job:completed`` payload: what ``GET /api/processing/job/:id`` shows; a preview
    job adds its window, ``{"start", "end"}`` in seconds."""
    result: dict[str, Any] = {"model": model, "stems": stems}
    if preview is not None:
        result["preview"] = {"start": preview[0], "end": preview[1]}
    return result
