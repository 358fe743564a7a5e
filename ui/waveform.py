"""A waveform on the page: the peaks of a track or a stem drawn by ui/waveform.js, with the beat grid and the
sections of an analysis, following (and seeking) an audio player.

The browser fetches the peaks from ``/api/tracks/{id}/peaks`` or ``/api/stems/{id}/peaks`` (cached, with an
ETag): waveforms travel over plain HTTP, never over NiceGUI's socket. The level asked for keeps the document
to a few thousand pixels whatever the length of the audio.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from core.daw.peaks import LEVELS
from ui.palette import TRACK_COLOR, section_color

# Pixels to ask for at most: about a wide screen's width at 2x (16-bit peaks: quiet stems keep their shape;
# under 100 KB of JSON).
TRACK_PIXELS = 3000
STEM_PIXELS = 1200
_RATE_GUESS = 48000  # Hz: the highest common rate, so the level is never finer than needed


def peaks_level(duration_s: float | None, pixels: int) -> int:
    """The finest peaks level (samples per pixel) that keeps ``duration_s`` of audio under ``pixels``."""
    frames = (duration_s or 0) * _RATE_GUESS
    for level in LEVELS:
        if frames / level <= pixels:
            return level
    return LEVELS[-1]


def grid_of(analysis: dict[str, Any] | None) -> dict[str, Any]:
    """The beat grid and sections of an analysis result (empty lists without one), as the component takes them."""
    if not analysis:
        return {"beats": [], "downbeats": [], "sections": []}
    sections = [{"start": s["start"], "end": s["end"], "label": s.get("label", "?"),
                 "color": section_color(str(s.get("label", "")))}
                for s in analysis.get("sections") or [] if "start" in s and "end" in s]
    return {"beats": analysis.get("beats") or [], "downbeats": analysis.get("downbeats") or [], "sections": sections}


class Waveform(ui.element, component="waveform.js"):
    """The canvas waveform; ``data-drawn`` on its element holds the number of peaks pixels once drawn."""

    def __init__(self, peaks_url: str, *, duration: float | None = None, color: str = TRACK_COLOR,
                 height: int = 120, audio_id: str | None = None, analysis: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._props.update({"peaks_url": peaks_url, "duration": duration or 0, "color": color, "height": height,
                            "audio_id": audio_id or "", **grid_of(analysis)})
        self.classes("w-full")


def track_waveform(track_id: str, duration: float | None, *, audio_id: str | None,
                   analysis: dict[str, Any] | None) -> Waveform:
    level = peaks_level(duration, TRACK_PIXELS)
    return Waveform(f"/api/tracks/{track_id}/peaks?samples_per_pixel={level}&bits=16", duration=duration,
                    audio_id=audio_id, analysis=analysis, height=128)


def stem_waveform(stem_id: str, duration: float | None, *, color: str, audio_id: str | None) -> Waveform:
    level = peaks_level(duration, STEM_PIXELS)
    return Waveform(f"/api/stems/{stem_id}/peaks?samples_per_pixel={level}&bits=16", duration=duration,
                    color=color, audio_id=audio_id, height=44)
