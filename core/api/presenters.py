"""Turning stored rows into the shapes the API promises."""

from __future__ import annotations

from urllib.parse import quote

from core.api.schemas import TrackOut
from data.models import Track


def file_url(relative: str | None) -> str | None:
    return "/files/" + quote(relative) if relative else None


def track_out(track: Track) -> TrackOut:
    out = TrackOut.model_validate(track)
    out.audio_url = file_url(track.audio_path)
    return out
