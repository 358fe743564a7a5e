"""Onset strength and beat tracking at a known tempo.

``onset_strength`` is the spectral flux of a given spectrogram (``librosa.onset.onset_strength(S=...)`` with
lag 1, no reference maximum filter, mean over bands). ``beat_track`` is Ellis' dynamic-programming beat
tracker (D. P. W. Ellis, "Beat tracking by dynamic programming", J. New Music Research 36(1), 2007) with the
arithmetic of ``librosa.beat.beat_track(onset_envelope=..., bpm=..., trim=False)`` 0.11, vectorised with numpy
instead of numba loops.
"""

from __future__ import annotations

import numpy as np


def onset_strength(spectrogram: np.ndarray, *, lag: int = 1, center: bool = True, n_fft: int = 2048,
                   hop_length: int = 512) -> np.ndarray:
    """Spectral flux: per frame, the mean over bands of the rise of ``spectrogram`` ``(bands, frames)`` since
    ``lag`` frames before, negative changes counted as 0; ``(frames,)`` in the spectrogram's dtype.

    The first ``lag`` frames are 0, so frame t holds the change into frame t. With ``center=True`` (librosa's
    default) the curve is shifted ``n_fft // (2 * hop_length)`` frames later still, to sit on the centre of an
    uncentred STFT's frames, and cut to ``frames``; with ``center=False`` it is not shifted.
    """
    if lag < 1:
        raise ValueError(f"lag must be a positive integer, not {lag}")
    spectrogram = np.atleast_2d(spectrogram)
    rise = np.maximum(0.0, spectrogram[:, lag:] - spectrogram[:, :-lag])
    flux = np.mean(rise, axis=0)
    shift = lag + (n_fft // (2 * hop_length) if center else 0)
    flux = np.pad(flux, (shift, 0))
    if center:
        flux = flux[: spectrogram.shape[1]]
    return flux


def _local_score(onsets: np.ndarray, frames_per_beat: float) -> np.ndarray:
    """The onset envelope smoothed by a Gaussian of ``frames_per_beat / 32`` frames standard deviation, cut at
    a beat either side ('same' convolution), float64. As librosa's numba loop, the envelope's first frame does
    not take part."""
    window = np.exp(-0.5 * (np.arange(-frames_per_beat, frames_per_beat + 1) * 32.0 / frames_per_beat) ** 2)
    half = len(window) // 2
    envelope = onsets.astype(np.float64)
    envelope[0] = 0.0
    return np.convolve(envelope, window)[half: half + len(onsets)]


def _dynamic_programme(local: np.ndarray, frames_per_beat: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """``(backlink, cumulative)``: Ellis' recursion ``C(t) = O(t) + max_p [C(p) - tightness (log((t - p) /
    period))^2]`` over predecessors ``p`` from ``round(period / 2)`` to ``2 period`` frames back, and for each t
    the best ``p`` (-1 for none, and for every frame before the first whose local score reaches 1 % of the
    largest). Ties go to the nearest predecessor, as in librosa's loop.

    Every predecessor lies at least ``round(period / 2)`` frames back, so that many frames at a time are
    resolved together from scores already known.
    """
    n = len(local)
    nearest = int(np.round(frames_per_beat / 2))
    farthest = int(2 * frames_per_beat)
    if nearest < 1:
        raise ValueError(f"a beat period of {frames_per_beat} frames is too short to track")
    distance = np.arange(nearest, farthest + 1)
    penalty = tightness * (np.log(distance) - np.log(frames_per_beat)) ** 2
    cumulative = np.zeros(n)
    best_link = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, nearest):
        t = np.arange(start, min(n, start + nearest))
        previous = t[:, np.newaxis] - distance[np.newaxis, :]
        valid = previous >= 0
        scores = np.where(valid, cumulative[np.maximum(previous, 0)] - penalty, -np.inf)
        pick = np.argmax(scores, axis=1)
        found = valid[np.arange(len(t)), pick]
        best = scores[np.arange(len(t)), pick]
        cumulative[t] = np.where(found, local[t] + best, local[t])
        best_link[t] = np.where(found, previous[np.arange(len(t)), pick], -1)
    started = local >= 0.01 * local.max()
    first = int(np.argmax(started)) if started.any() else n
    backlink = best_link.copy()
    backlink[:first] = -1
    return backlink, cumulative


def _local_maxima(x: np.ndarray) -> np.ndarray:
    """``x[t] > x[t-1]`` and ``x[t] >= x[t+1]``; never the first frame; the last where it exceeds the one
    before (``librosa.util.localmax``)."""
    peaks = np.zeros(len(x), dtype=bool)
    if len(x) < 2:
        return peaks
    peaks[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    peaks[-1] = x[-1] > x[-2]
    return peaks


def _last_beat(cumulative: np.ndarray) -> int:
    """The last local maximum of the cumulative score that reaches half the median of all its local maxima
    (the last frame if none does)."""
    peaks = _local_maxima(cumulative)
    if not peaks.any():
        return len(cumulative) - 1
    floor = 0.5 * np.median(cumulative[peaks])
    candidates = np.flatnonzero(peaks & (cumulative >= floor))
    return int(candidates[-1]) if candidates.size else len(cumulative) - 1


def beat_frames(onset_envelope: np.ndarray, bpm: float, frame_rate: float, tightness: float = 100.0) -> np.ndarray:
    """Beat positions (frame indices, ascending, int64) in an onset envelope ``(frames,)`` at ``frame_rate``
    frames/s, tracked at a fixed tempo ``bpm``.

    Ellis (2007): the envelope is divided by its standard deviation and smoothed by a Gaussian a beat wide (the
    local score); the dynamic programme finds the best chain of beats about a period apart, each link
    penalised by ``tightness`` times its squared log deviation from the period; the chain is read back from the
    last strong peak of the cumulative score. Beats on the leading and trailing frames whose local score is 0
    are dropped (librosa's ``trim=False``). An all-zero envelope has no beats.
    """
    onsets = np.asarray(onset_envelope)
    if onsets.ndim != 1:
        raise ValueError(f"beat_frames takes a 1-D onset envelope, not shape {onsets.shape}")
    if bpm <= 0:
        raise ValueError(f"bpm={bpm} must be strictly positive")
    if tightness <= 0:
        raise ValueError("tightness must be strictly positive")
    if not onsets.any():
        return np.zeros(0, dtype=np.int64)
    period = float(np.round(frame_rate * 60.0 / bpm))
    normalised = onsets / (onsets.std(ddof=1) + np.finfo(onsets.dtype).tiny)
    local = _local_score(normalised, period)
    positive = np.flatnonzero(local > 0.0)
    if not positive.size:  # onsets in the first frame only: nothing to track (librosa reads past its array)
        return np.zeros(0, dtype=np.int64)
    backlink, cumulative = _dynamic_programme(local, period, float(np.float32(tightness)))
    beats = np.zeros(len(local), dtype=bool)
    n = _last_beat(cumulative)
    while n >= 0:
        beats[n] = True
        n = backlink[n]
    # trim=False in librosa still clears the frames before the first and after the last positive local score.
    beats[: positive[0]] = False
    beats[positive[-1] + 1:] = False
    return np.flatnonzero(beats)


def beat_track(onset_envelope: np.ndarray, *, sr: float, hop_length: int, bpm: float,
               tightness: float = 100.0) -> np.ndarray:
    """Beat times in seconds (float64, ascending): ``beat_frames`` at ``sr / hop_length`` frames/s, each frame
    index times ``hop_length / sr`` (the frame's start sample, as ``librosa.frames_to_time``)."""
    frames = beat_frames(onset_envelope, bpm, float(sr) / hop_length, tightness)
    return (frames * hop_length).astype(int) / float(sr)
