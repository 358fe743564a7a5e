"""The magnitude STFT and the frame-wise features read off it: mel power, RMS, spectral centroid, roll-off,
bandwidth and contrast, decibels and MFCC, and the zero-crossing rate of the signal.

Every function is the arithmetic of the librosa 0.11 function it names (defaults included), written with
numpy alone; the dtypes follow librosa's so the results agree to float rounding (tests/test_dsp.py).
Shapes follow librosa: a spectrogram is ``(bins, frames)`` with ``bins = 1 + n_fft // 2``.
"""

from __future__ import annotations

import numpy as np

from core.analysis.dsp import frame, periodic_hann

# Columns transformed per FFT call, and per step of the frame-wise features: bounds their float64 temporaries
# (~2 MB at n_fft 2048). Every feature is computed column by column, so the step does not change a result.
_FFT_COLUMNS = 256
_FEATURE_COLUMNS = 256


def fft_frequencies(sr: float, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each of the ``1 + n_fft // 2`` bins of a real FFT, float64."""
    return np.fft.rfftfreq(n_fft, d=1.0 / sr)


def stft_magnitude(y: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray | None = None) -> np.ndarray:
    """``|STFT|`` of 1-D ``y`` without padding: ``(1 + n_fft // 2, 1 + (len(y) - n_fft) // hop_length)`` float32.

    Frame ``t`` is ``y[t * hop_length:][:n_fft]`` times ``window`` (default: the periodic Hann window of
    ``n_fft``), transformed in float64; the complex result is rounded to complex64 before its magnitude is
    taken, as ``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=False))`` does for float32
    input. (Callers pad the signal themselves: service.py frames a centred, zero-padded segment.)
    """
    if window is None:
        window = periodic_hann(n_fft)
    frames = frame(np.asarray(y), n_fft, hop_length)
    out = np.empty((1 + n_fft // 2, frames.shape[1]), dtype=np.float32)
    w = window[:, np.newaxis]
    for start in range(0, frames.shape[1], _FFT_COLUMNS):
        stop = min(frames.shape[1], start + _FFT_COLUMNS)
        spectrum = np.fft.rfft(w * frames[:, start:stop], axis=0).astype(np.complex64)
        out[:, start:stop] = np.abs(spectrum)
    return out


# --- mel scale (Slaney's Auditory Toolbox) -----------------------------------------------------------------

_MEL_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (Auditory Toolbox, 1998): linear below 1 kHz (``f / (200/3)``), logarithmic above
    (27 mels per factor 6.4); float64, the shape of ``frequencies``."""
    f = np.asarray(frequencies, dtype=np.float64)
    mels = f / _MEL_F_SP
    above = f >= _MEL_MIN_LOG_HZ
    return np.where(above, _MEL_MIN_LOG_MEL + np.log(np.where(above, f, _MEL_MIN_LOG_HZ) / _MEL_MIN_LOG_HZ)
                    / _MEL_LOGSTEP, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """The inverse of ``hz_to_mel`` (Slaney's scale), float64."""
    m = np.asarray(mels, dtype=np.float64)
    freqs = _MEL_F_SP * m
    above = m >= _MEL_MIN_LOG_MEL
    return np.where(above, _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (np.where(above, m, 0.0) - _MEL_MIN_LOG_MEL)),
                    freqs)


def mel_filterbank(sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filters, ``(n_mels, 1 + n_fft // 2)`` float32.

    ``n_mels + 2`` band edges equally spaced on Slaney's mel scale from ``fmin`` to ``fmax`` (default
    ``sr / 2``); filter ``i`` rises from edge ``i`` to ``i + 1`` and falls to ``i + 2``, and is scaled by
    ``2 / (f[i + 2] - f[i])`` so each has the same area (Slaney's Auditory Toolbox; ``librosa.filters.mel``
    with its defaults ``htk=False, norm="slaney"``).
    """
    if fmax is None:
        fmax = float(sr) / 2
    fft_freqs = fft_frequencies(sr, n_fft)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, np.newaxis] - fft_freqs[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, np.newaxis]
    return weights


def filterbank_power(weights: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``weights @ power``: ``(filters, frames)`` from a filterbank ``(filters, bins)`` whose filters each span one
    run of bins (mel triangles) and a power spectrogram ``(bins, frames)``, in their common dtype.

    Each filter is summed over its own bins only, in numpy's einsum loops rather than BLAS: a dense product is
    ~60 times the work for 128 mel filters, and OpenBLAS' threads crawl when the cores are busy with other work.
    (``librosa.feature.melspectrogram(S=power)`` is the dense product.)
    """
    out = np.zeros((weights.shape[0], power.shape[1]), dtype=np.result_type(weights, power))
    for i, row in enumerate(weights):
        nonzero = np.flatnonzero(row)
        if nonzero.size:
            low, high = nonzero[0], nonzero[-1] + 1
            out[i] = np.einsum("f,ft->t", row[low:high], power[low:high])
    return out


# --- frame-wise features of a magnitude spectrogram ---------------------------------------------------------


def rms(magnitude: np.ndarray, frame_length: int) -> np.ndarray:
    """Root-mean-square level of each frame from its magnitude spectrum, ``(frames,)`` float32.

    Parseval's theorem for a real frame of ``frame_length`` samples (even): the DC and Nyquist bins count once,
    the others twice, ``rms = sqrt(2 sum_k w_k |X_k|^2) / frame_length`` (``librosa.feature.rms(S=...)``; the
    windowed frame's level, since S comes from a windowed STFT).
    """
    if magnitude.shape[0] != frame_length // 2 + 1:
        raise ValueError(f"{magnitude.shape[0]} bins do not come from frames of {frame_length} samples")
    power = np.square(magnitude, dtype=np.float32)
    power[0] *= 0.5
    if frame_length % 2 == 0:
        power[-1] *= 0.5
    return np.sqrt(2 * np.sum(power, axis=0) / frame_length**2)


def _unit_sum_columns(magnitude: np.ndarray) -> np.ndarray:
    """Each column divided by its sum (all-zero columns stay zero), in the dtype of ``magnitude``."""
    total = np.sum(np.abs(magnitude).astype(np.float64), axis=0, keepdims=True)
    total[total < np.finfo(magnitude.dtype).tiny] = 1.0
    out = np.empty_like(magnitude)
    out[...] = magnitude / total
    return out


def spectral_centroid(magnitude: np.ndarray, sr: float, n_fft: int) -> np.ndarray:
    """The magnitude-weighted mean frequency (Hz) of each frame, ``(frames,)`` float64:
    ``sum_k f_k |X_k| / sum_k |X_k|`` (``librosa.feature.spectral_centroid``; 0 for a silent frame)."""
    freqs = fft_frequencies(sr, n_fft)[:, np.newaxis]
    out = np.empty(magnitude.shape[1])
    for start in range(0, magnitude.shape[1], _FEATURE_COLUMNS):
        part = magnitude[:, start: start + _FEATURE_COLUMNS]
        out[start: start + part.shape[1]] = np.sum(freqs * _unit_sum_columns(part), axis=0)
    return out


def spectral_bandwidth(magnitude: np.ndarray, sr: float, n_fft: int, centroid: np.ndarray | None = None) -> np.ndarray:
    """The magnitude-weighted standard deviation (Hz) of frequency about the centroid, per frame, ``(frames,)``
    float64: ``sqrt(sum_k |X_k| (f_k - c)^2 / sum_k |X_k|)`` (``librosa.feature.spectral_bandwidth``, p = 2)."""
    if centroid is None:
        centroid = spectral_centroid(magnitude, sr, n_fft)
    freqs = fft_frequencies(sr, n_fft)[:, np.newaxis]
    centroid = np.asarray(centroid)
    out = np.empty(magnitude.shape[1])
    for start in range(0, magnitude.shape[1], _FEATURE_COLUMNS):
        part = magnitude[:, start: start + _FEATURE_COLUMNS]
        deviation = np.abs(freqs - centroid[np.newaxis, start: start + part.shape[1]])
        out[start: start + part.shape[1]] = np.sum(_unit_sum_columns(part) * deviation**2.0, axis=0) ** 0.5
    return out


def spectral_rolloff(magnitude: np.ndarray, sr: float, n_fft: int, roll_percent: float = 0.85) -> np.ndarray:
    """Per frame, the lowest bin frequency (Hz) at which the cumulative magnitude reaches ``roll_percent`` of
    the frame's total, ``(frames,)`` float64 (``librosa.feature.spectral_rolloff``; the running sum in the
    dtype of ``magnitude``, as there, so the threshold falls on the same bin)."""
    if not 0.0 < roll_percent < 1.0:
        raise ValueError("roll_percent must lie in (0, 1)")
    first = np.empty(magnitude.shape[1], dtype=np.int64)
    for start in range(0, magnitude.shape[1], _FEATURE_COLUMNS):
        cumulative = np.cumsum(magnitude[:, start: start + _FEATURE_COLUMNS], axis=0)
        reached = cumulative >= roll_percent * cumulative[-1:]
        first[start: start + cumulative.shape[1]] = np.argmax(reached, axis=0)
    return fft_frequencies(sr, n_fft)[first]


def power_to_db(power: np.ndarray, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(max(amin, power) / ref)``, floored at ``top_db`` under the array's maximum
    (``librosa.power_to_db`` with its defaults); the dtype of ``power``."""
    power = np.asarray(power)
    db = 10.0 * np.log10(np.maximum(amin, power))
    db -= 10.0 * np.log10(np.maximum(amin, abs(ref)))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def spectral_contrast(magnitude: np.ndarray, sr: float, n_fft: int, fmin: float = 200.0, n_bands: int = 6,
                      quantile: float = 0.02) -> np.ndarray:
    """Peak-to-valley level difference (dB) in ``n_bands + 1`` octave bands, ``(n_bands + 1, frames)`` float64.

    Jiang et al., "Music type classification by spectral contrast feature" (ICME 2002), as
    ``librosa.feature.spectral_contrast`` computes it: bands ``[0, fmin]``, then octaves from ``fmin``, the
    last one reaching Nyquist; each band also takes the bin just under its lower edge and (but the last) drops
    its top bin. In each band and frame the peak is the mean of the strongest ``max(1, round(quantile * bins))``
    magnitudes and the valley the mean of as many weakest; the contrast is ``power_to_db(peak) -
    power_to_db(valley)``, where (as in librosa) each ``power_to_db`` takes its 80 dB floor under the maximum
    over all bands and frames of the call, so the result depends on which frames are passed together.
    """
    freqs = fft_frequencies(sr, n_fft)
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin * 2.0 ** np.arange(0, n_bands + 1)
    if np.any(edges[:-1] >= 0.5 * sr):
        raise ValueError("a contrast band starts above Nyquist: lower fmin or n_bands")
    valley = np.zeros((n_bands + 1, magnitude.shape[1]))
    peak = np.zeros_like(valley)
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        band = (freqs >= low) & (freqs <= high)
        inside = np.flatnonzero(band)
        if k > 0:
            band[inside[0] - 1] = True
        if k == n_bands:
            band[inside[-1] + 1:] = True
        rows = magnitude[band]
        if k < n_bands:
            rows = rows[:-1]
        count = max(1, int(np.rint(quantile * np.sum(band))))
        ordered = np.sort(rows, axis=0)
        valley[k] = np.mean(ordered[:count], axis=0)
        peak[k] = np.mean(ordered[-count:], axis=0)
    return power_to_db(peak) - power_to_db(valley)


def dct_ortho_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of length ``n_in``, ``(n_out, n_in)`` float64:
    ``D[k, n] = sqrt(2 / N) c_k cos(pi k (2n + 1) / (2N))`` with ``c_0 = 1 / sqrt(2)``, else 1 (Ahmed, Natarajan
    & Rao 1974; ``scipy.fft.dct(type=2, norm="ortho")`` as a matrix)."""
    n = np.arange(n_in)
    k = np.arange(n_out)[:, np.newaxis]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def mfcc(mel_db: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """Mel-frequency cepstral coefficients ``(n_mfcc, frames)`` of a mel spectrogram in dB ``(n_mels, frames)``:
    its orthonormal DCT-II along the mel axis, first ``n_mfcc`` coefficients, no liftering (Davis & Mermelstein
    1980; ``librosa.feature.mfcc(S=mel_db)`` with its defaults), in the dtype of ``mel_db``."""
    basis = dct_ortho_matrix(n_mfcc, mel_db.shape[0])
    return np.einsum("kn,nt->kt", basis, mel_db).astype(mel_db.dtype, copy=False)  # einsum: no BLAS threads


def zero_crossing_rate(y: np.ndarray, frame_length: int, hop_length: int, threshold: float = 1e-10) -> np.ndarray:
    """The fraction of the ``frame_length`` samples of each frame of ``y`` (no padding, as ``frame``) at which
    the sign differs from the previous sample, ``(frames,)`` float64.

    Samples within ``threshold`` of 0 count as positive zeros, and a frame's first sample never counts (it
    has no predecessor inside the frame): ``librosa.feature.zero_crossing_rate(y, center=False)``.
    """
    y = np.asarray(y)
    if len(y) < frame_length:
        raise ValueError(f"input of {len(y)} samples is too short for frames of {frame_length}")
    negative = y < -np.float64(threshold)
    crossings = np.concatenate([[0], np.cumsum(negative[1:] != negative[:-1], dtype=np.int64)])
    starts = np.arange(0, len(y) - frame_length + 1, hop_length)
    # crossings[j] counts sign changes between samples 0..j; a frame [s, s + L) holds those at s+1 .. s+L-1.
    counts = crossings[starts + frame_length - 1] - crossings[starts]
    return counts / float(frame_length)
