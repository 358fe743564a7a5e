"""How many samples of a mix will clip, known before the mix is rendered.

The export streams its WAV as it renders, yet tells the clipped-sample count in a response header, which
goes first. The count is exact without rendering the whole mix twice: the stems' waveform peaks (256
samples per pixel, cached when a stem is made) give, per pixel, an upper bound of each stem's magnitude; a
bound of the mix follows from the gains (volume, the envelope's largest value over the pixel) and the pan
matrix (all its entries are non-negative). Where the bound of both channels is at most full scale nothing
can clip; only the other pixels are rendered, with the mixdown itself, and their clipped samples counted.
A normal mix has no such pixel and costs a few array operations; a mix driven hard renders those parts
twice.

Peaks are int16 ``v`` of the decoded samples (``core.daw.peaks``): a sample ``x`` with peak ``v`` has
``|x| <= (|v| + 1) / 32767`` (16-bit PCM reads as ``v / 32768``, anything else rounds ``x * 32767``); a
saturated peak (``|v| >= 32767``) bounds nothing and counts as unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.daw.mixdown import Mixdown
from core.daw.peaks import BASE_SAMPLES_PER_PIXEL, BasePeaks

PIXEL = BASE_SAMPLES_PER_PIXEL


def _magnitude_bound(peaks: BasePeaks, first_pixel: int, pixels: int) -> np.ndarray:
    """(pixels, 2) upper bounds of |x| per pixel and channel (mono copied to both); 0 past the stem's end."""
    base = peaks.peaks[first_pixel:first_pixel + pixels].astype(np.float64)
    amp = np.maximum(np.abs(base[..., 0]), np.abs(base[..., 1]))
    bound = np.where(amp >= 32767, np.inf, (amp + 1.0) / 32767.0)
    if bound.shape[1] == 1:
        bound = np.repeat(bound, 2, axis=1)
    out = np.zeros((pixels, 2))
    out[: bound.shape[0]] = bound[:, :2]
    return out


def _times(coefficient: float, bound: np.ndarray) -> np.ndarray:
    return np.zeros_like(bound) if coefficient == 0 else coefficient * bound


def suspect_ranges(mixdown: Mixdown, peaks_of: Callable[[Path], BasePeaks]) -> list[tuple[int, int]]:
    """Frame ranges ``[first, end)`` of the mix's range where the peak bound says a sample may clip."""
    if not mixdown.voices or mixdown.frames == 0:
        return []
    first_pixel = mixdown.first // PIXEL
    pixels = -(-mixdown.end // PIXEL) - first_pixel
    starts = (first_pixel + np.arange(pixels)) * PIXEL
    lasts = np.minimum(starts + PIXEL, mixdown.total_frames) - 1
    left, right = np.zeros(pixels), np.zeros(pixels)
    for voice in mixdown.voices:
        magnitude = _magnitude_bound(peaks_of(voice.audio.path), first_pixel, pixels)
        gain = voice.gain * voice.envelope.max_over(starts, lasts)
        m = np.eye(2) if voice.matrix is None else voice.matrix
        for out, row in ((left, 0), (right, 1)):
            term = _times(m[row, 0], magnitude[:, 0]) + _times(m[row, 1], magnitude[:, 1])
            with np.errstate(invalid="ignore"):  # 0 * inf: a silent stem with unknown peaks adds nothing
                out += np.where(gain == 0, 0.0, gain * term)
    safe = (left * mixdown.master <= 1.0) & (right * mixdown.master <= 1.0)
    ranges: list[tuple[int, int]] = []
    for index in np.flatnonzero(~safe):
        a = max(mixdown.first, int(starts[index]))
        b = min(mixdown.end, int(lasts[index]) + 1)
        if ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((a, b))
    return ranges


def count_clipped_ahead(mixdown: Mixdown, peaks_of: Callable[[Path], BasePeaks]) -> int:
    """The exact number of samples of the mix's range that will be clipped (see the module's text)."""
    return sum(mixdown.count_clipped(a, b) for a, b in suspect_ranges(mixdown, peaks_of))
