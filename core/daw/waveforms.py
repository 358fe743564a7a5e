"""Drawing waveforms ahead of time: peaks for new audio, computed by the job that made it.

A job that downloads a track or separates stems computes their peaks (``core.daw.peaks``, cached next to
each file) as its last step, so the editor and the track page show waveforms at once. Peaks are a
convenience: a file whose peaks cannot be computed is logged and skipped, never failing the job (the
peaks routes compute them on first request); a cancelled job still stops here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from core.daw.peaks import cached_peaks
from core.progress import BadInput, ProgressFn, scaled

log = logging.getLogger("stemforge.daw")


def draw_waveforms(paths: Sequence[Path], progress: ProgressFn) -> None:
    """Cache the peaks of each file in ``paths``; ``progress`` goes 0 -> 100 over them."""
    progress(0, "Drawing the waveforms")
    for index, path in enumerate(paths):
        part = scaled(progress, 100 * index / len(paths), 100 * (index + 1) / len(paths))
        try:
            cached_peaks(path, lambda pct, _msg, part=part: part(pct, "Drawing the waveforms"))
        except (BadInput, OSError) as exc:
            log.warning("No waveform peaks for %s: %s", path, exc)
    progress(100, "Drawing the waveforms")
