"""Turning stored rows into the shapes the API promises."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from core.analysis.camelot import camelot_code
from core.api.schemas import TrackActivity, TrackListItem, TrackOut
from core.tracks import TrackRow
from data.files import public_url
from data.models import Track

_TRACK_FIELDS = tuple(TrackOut.model_fields)


def _derived(row: Any) -> dict[str, Any]:
    """TrackOut's fields that are not a ``Track`` column of the same name."""
    return {
        "audio_url": public_url(row.audio_path) if row.audio_path else None,
        "key": row.musical_key,
        "camelot": camelot_code(row.musical_key),
        "has_stems": bool(row.has_stems),
        "analysed": row.analysed_at is not None,
    }


def _other_types(value: object) -> str:
    # asyncpg hands out its own UUID subclass, which orjson (exact types only) does not know.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def track_out(track: Track) -> TrackOut:
    out = TrackOut.model_validate(track)
    for name, value in _derived(track).items():
        setattr(out, name, value)
    return out


def track_list_item(row: TrackRow) -> TrackListItem:
    """A library row (``core.tracks.TrackRow``) as ``GET /api/tracks`` lists it: TrackOut plus ``activity``."""
    out = TrackListItem.model_validate(row.track)
    for name, value in _derived(row.track).items():
        setattr(out, name, value)
    if row.activity is not None:
        a = row.activity
        out.activity = TrackActivity(job_id=a.job_id, kind=a.kind, status=a.status,  # type: ignore[arg-type]
                                     progress=a.progress, message=a.message, error=a.error)
    return out


def track_envelope_json(row: Any) -> bytes:
    """``{"data": <TrackOut>}`` as JSON bytes, straight from a stored track row.

    For the hottest read of the API: the row's values are already of the declared types (the
    database schema and SQLAlchemy's column types see to that), so validating them again into a
    ``TrackOut`` only costs time. The bytes are the same as ``Envelope(data=track_out(row))``'s JSON
    (tests compare the two on fully populated rows), fields in ``TrackOut``'s order, UTC as ``Z``.
    """
    derived = _derived(row)
    data = {name: derived[name] if name in derived else getattr(row, name) for name in _TRACK_FIELDS}
    return orjson.dumps({"data": data}, default=_other_types, option=orjson.OPT_UTC_Z)
