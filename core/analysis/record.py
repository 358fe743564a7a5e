"""Storing an analysis result: the scalar features in typed ``AnalysisResult`` columns (so the library
can sort and filter by tempo, key and energy), everything else in its JSON ``data`` column.

``to_row`` is what a job handler calls after ``analyze``; ``to_result`` rebuilds the exact dict
``analyze`` returned, for the API and the export. ``track_summary`` is what a track-level result changes
in the library's summary on the track row (``Track.tempo``, ``musical_key``, ``key_confidence``,
``energy``, ``analysed_at``).
"""

from __future__ import annotations

import uuid
from typing import Any

from data.models import AnalysisResult, Track

# The track's summary columns, each fed by the result field of the same name (``key``: ``musical_key``).
SUMMARY: dict[str, str] = {"tempo": "tempo", "key": "musical_key", "key_confidence": "key_confidence",
                           "energy": "energy"}

# Result fields kept in typed columns of the same name.
COLUMNS: tuple[str, ...] = (
    "tempo", "key", "key_confidence", "energy",
    "spectral_centroid", "spectral_rolloff", "spectral_bandwidth", "zero_crossing_rate",
)


def to_row(result: dict[str, Any], *, user_id: uuid.UUID, track_id: uuid.UUID, stem_id: uuid.UUID | None = None,
           job_id: uuid.UUID | None = None) -> AnalysisResult:
    """A new, unsaved row holding ``result`` (as returned by ``core.analysis.analyze``)."""
    columns = {name: result.get(name) for name in COLUMNS}
    data = {name: value for name, value in result.items() if name not in COLUMNS}
    # Which scalar fields the result had (a partial analysis has no tempo at all, not a null one).
    data["scalar_fields"] = [name for name in COLUMNS if name in result]
    return AnalysisResult(user_id=user_id, track_id=track_id, stem_id=stem_id, job_id=job_id, data=data, **columns)


def to_result(row: AnalysisResult) -> dict[str, Any]:
    """The result dict ``to_row`` stored: the same fields and values (in another order)."""
    data = dict(row.data or {})
    present = data.pop("scalar_fields", list(COLUMNS))
    result = {name: getattr(row, name) for name in COLUMNS if name in present}
    result.update(data)
    return result


def track_summary(row: AnalysisResult) -> dict[str, Any]:
    """What ``row`` (a saved analysis of the track itself, ``stem_id`` None) sets on its ``Track``: the
    fields it measured (a partial analysis leaves the others as an earlier one measured them) and
    ``analysed_at``. Empty for a stem's analysis: the drums' tempo is not the track's."""
    if row.stem_id is not None:
        return {}
    present = (row.data or {}).get("scalar_fields", list(COLUMNS))
    values: dict[str, Any] = {column: getattr(row, field) for field, column in SUMMARY.items() if field in present}
    values["analysed_at"] = row.created_at
    return values


def apply_summary(track: Track, row: AnalysisResult) -> None:
    """Copy ``track_summary(row)`` onto ``track`` (the caller commits both in one transaction)."""
    for name, value in track_summary(row).items():
        setattr(track, name, value)
