"""Pitch units and the tuning estimate: note names and MIDI numbers to Hz and back, and how far a recording's
partials sit from the equal-tempered A440 grid.

``estimate_tuning`` is the arithmetic of ``librosa.estimate_tuning(S=...)`` (its ``piptrack`` peak picking and
``pitch_tuning`` histogram) in numpy, with librosa's float32 steps kept so the estimate falls in the same
histogram bin.
"""

from __future__ import annotations

import re

import numpy as np

_NOTE = re.compile(r"^\s*(?P<letter>[A-Ga-g])(?P<accidentals>[#b♯♭!]*)(?P<octave>-?\d+)?\s*$")
_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1, "!": -1}


def midi_to_hz(notes: np.ndarray | float) -> np.ndarray | np.floating:
    """Equal-tempered frequency (Hz) of MIDI note numbers: ``440 * 2^((m - 69) / 12)`` (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asanyarray(notes) - 69.0) / 12.0)


def hz_to_midi(frequencies: np.ndarray | float) -> np.ndarray | np.floating:
    """The (fractional) MIDI note number of frequencies in Hz: ``12 (log2(f) - log2(440)) + 69``."""
    return 12 * (np.log2(np.asanyarray(frequencies)) - np.log2(440.0)) + 69


def note_to_midi(note: str) -> int:
    """The MIDI number of a note name with its octave in scientific pitch notation: ``"C1"`` = 24,
    ``"A4"`` = 69, ``"F#3"``, ``"Bb2"``; octave 0 when none is given. Raises ValueError for anything else."""
    match = _NOTE.match(note)
    if not match:
        raise ValueError(f"not a note name: {note!r}")
    offset = sum(_ACCIDENTALS[a] for a in match.group("accidentals"))
    octave = int(match.group("octave") or 0)
    return 12 * (octave + 1) + _STEPS[match.group("letter").upper()] + offset


def note_to_hz(note: str) -> float:
    """Equal-tempered frequency (Hz) of a note name: ``note_to_hz("C1")`` = 32.703..., ``"A4"`` = 440."""
    return float(midi_to_hz(note_to_midi(note)))


def _parabolic_shift(below: np.ndarray, here: np.ndarray, above: np.ndarray) -> np.ndarray:
    """The offset in bins of the vertex of the parabola through three neighbouring bins, ``-b / a`` with
    ``a = above + below - 2 here`` and ``b = (above - below) / 2``; 0 where the vertex is a bin or more away
    (``|b| >= |a|``). The sum of the neighbours is taken in the input's precision and the rest in float64, as
    librosa's numba stencil does; returned in the input dtype."""
    a = (above + below).astype(np.float64) - 2.0 * here.astype(np.float64)
    b = (above - below).astype(np.float64) / 2
    vertex = np.zeros_like(a)
    np.divide(-b, a, out=vertex, where=np.abs(b) < np.abs(a))
    return vertex.astype(here.dtype)


def _local_maxima(x: np.ndarray) -> np.ndarray:
    """Boolean mask of the local maxima along axis 0: ``x[k] > x[k-1]`` and ``x[k] >= x[k+1]``; the first row
    never, the last where it exceeds the one before (``librosa.util.localmax``)."""
    peaks = np.zeros(x.shape, dtype=bool)
    if x.shape[0] < 2:
        return peaks
    peaks[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    peaks[-1] = x[-1] > x[-2]
    return peaks


def _peak_list(magnitude: np.ndarray, sr: float, n_fft: int, fmin: float, fmax: float,
               threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, columns, pitches, levels)`` of the spectral peaks (see ``spectral_peaks``), one entry per peak.

    Only the peaks' neighbourhoods are interpolated, so the temporaries are a few masks of the spectrogram's
    size; the values are those librosa computes over the whole array (its gradient, a central difference in
    the input dtype, and its parabolic shift, at the same bins)."""
    mag = np.abs(magnitude)
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    floor = threshold * np.max(mag, axis=0, keepdims=True)
    # Bins at or above Nyquist are out of band (f < fmax <= sr / 2), so every peak has a neighbour either side.
    in_band = ((max(fmin, 0.0) <= freqs) & (freqs < min(fmax, float(sr) / 2)))[:, np.newaxis]
    rows, cols = np.nonzero(in_band & _local_maxima(mag * (mag > floor)))
    below, here, above = mag[rows - 1, cols], mag[rows, cols], mag[rows + 1, cols]
    slope = (above - below) / 2.0  # np.gradient's central difference
    shift = _parabolic_shift(below, here, above)
    pitches = ((rows + shift) * float(sr) / n_fft).astype(mag.dtype)
    levels = here + 0.5 * slope * shift
    return rows, cols, pitches, levels


def spectral_peaks(magnitude: np.ndarray, sr: float, n_fft: int, fmin: float = 150.0, fmax: float = 4000.0,
                   threshold: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Parabolically interpolated spectral peaks, ``(pitches, magnitudes)`` each the shape of ``magnitude``
    ``(1 + n_fft // 2, frames)``, zero where there is no peak.

    A peak is a local maximum over frequency, in ``[fmin, fmax)`` Hz, of the bins at least ``threshold`` times
    the frame's largest; its frequency and level are refined by a parabola through it and its neighbours
    (Smith & Serra's quadratic interpolation, 1987): ``librosa.piptrack(S=...)`` with its defaults.
    """
    rows, cols, pitches, levels = _peak_list(magnitude, sr, n_fft, fmin, fmax, threshold)
    pitch_map = np.zeros(magnitude.shape, dtype=pitches.dtype)
    level_map = np.zeros(magnitude.shape, dtype=levels.dtype)
    pitch_map[rows, cols] = pitches
    level_map[rows, cols] = levels
    return pitch_map, level_map


def pitch_tuning(frequencies: np.ndarray, resolution: float = 0.01, bins_per_octave: int = 12) -> float:
    """The most common deviation of ``frequencies`` (Hz) from the equal-tempered grid around A440, in
    fractions of a bin (``-0.5 .. 0.5``): the left edge of the fullest bin of a histogram of the deviations with
    ``resolution``-wide bins; 0.0 for no frequencies (``librosa.pitch_tuning``)."""
    frequencies = np.atleast_1d(frequencies)
    frequencies = frequencies[frequencies > 0]
    if not np.any(frequencies):
        return 0.0
    octaves = np.log2(frequencies / (440.0 / 16))  # octaves above A0 / 2 (C0 lies 0.75 above it)
    residual = np.mod(bins_per_octave * octaves, 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, edges = np.histogram(residual, edges)
    return float(edges[np.argmax(counts)])


def estimate_tuning(magnitude: np.ndarray, sr: float, n_fft: int, resolution: float = 0.01,
                    bins_per_octave: int = 12) -> float:
    """Deviation of a recording from A440 tuning in fractions of a bin (``-0.5 .. 0.5``; semitones for
    ``bins_per_octave=12``), from its magnitude spectrogram ``(1 + n_fft // 2, frames)``.

    The spectral peaks (``spectral_peaks``) at least as strong as their median are histogrammed by their
    deviation from the grid (``pitch_tuning``): ``librosa.estimate_tuning(S=magnitude, sr=sr, n_fft=n_fft)``.
    0.0 when there is no peak at all.
    """
    _, _, pitches, levels = _peak_list(magnitude, sr, n_fft, 150.0, 4000.0, 0.1)
    pitched = pitches > 0
    floor = np.median(levels[pitched]) if pitched.any() else 0.0
    return pitch_tuning(pitches[(levels >= floor) & pitched], resolution, bins_per_octave)
