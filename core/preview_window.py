"""Where a stem preview starts by default: the track's loudest, most energetic stretch.

A preview separates ``duration`` seconds of a track so a person hears quickly what its stems will be like;
the part worth hearing is where everything plays (a chorus, a drop), not a quiet intro. That stretch is
the window with the most energy: the highest mean of the squared RMS over the window (mean power).

The RMS comes from the track's analysis when it has one with the ``energy`` feature (its ``rms`` curve at
``frame_rate`` values a second), else from the audio itself (decoded to mono at ``DECODE_RATE``, RMS over
blocks of ``BLOCK_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

DECODE_RATE = 11025  # Hz: loudness needs no more
BLOCK_SECONDS = 0.5
START_STEP = 0.1  # a start is rounded to this many seconds
MAX_SECONDS = 6 * 3600.0  # longer files are searched over their first six hours


def loudest_start(rms: Sequence[float] | np.ndarray, frame_rate: float, duration: float,
                  track_seconds: float) -> float:
    """The start (seconds, a multiple of ``START_STEP``) of the ``duration``-second window with the highest mean
    power (mean of ``rms``², ``rms`` sampled at ``frame_rate`` values a second). 0 when the track is not longer
    than the window or the curve is empty."""
    limit = max(0.0, track_seconds - duration)
    power = np.square(np.asarray(rms, dtype=np.float64))
    width = max(1, int(round(duration * frame_rate)))
    if limit <= 0.0 or power.size <= width:
        return 0.0
    sums = np.convolve(power, np.ones(width), mode="valid")  # sums[i]: frames i .. i + width - 1
    best = int(np.argmax(sums))
    start = min(best / frame_rate, limit)
    return round(round(start / START_STEP) * START_STEP, 3)


def loudest_start_of_file(path: Path, duration: float) -> float:
    """``loudest_start`` from the audio file itself. Raises ``core.progress.BadInput`` when the file cannot be
    decoded."""
    from core.analysis.decode import load_mono  # soundfile + soxr only

    y = load_mono(Path(path), DECODE_RATE, MAX_SECONDS)
    block = int(BLOCK_SECONDS * DECODE_RATE)
    count = len(y) // block
    rms = np.sqrt(np.mean(np.square(y[: count * block].reshape(count, block), dtype=np.float64), axis=1))
    return loudest_start(rms, 1.0 / BLOCK_SECONDS, duration, len(y) / DECODE_RATE)
