"""Turning stored rows into the shapes the API promises."""

from __future__ import annotations

from core.api.schemas import TrackOut
from data.files import public_url
from data.models import Track


def track_out(track: Track) -> TrackOut:
    out = TrackOut.model_validate(track)
    out.audio_url = public_url(track.audio_path) if track.audio_path else None
    return out
