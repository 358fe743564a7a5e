"""Storing an analysis result: the scalar features in typed ``AnalysisResult`` columns (so the library
can sort and filter by tempo, key and energy), everything else in its JSON ``data`` column.

``to_row`` is what a job handler calls after ``analyze``; ``to_result`` rebuilds the exact dict
``analyze`` returned, for the API and the export.
"""

from __future__ import annotations

import uuid
from typing import Any

from data.models import AnalysisResult

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
