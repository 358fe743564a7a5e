"""Generic array tools of the analysis: windows, framing, autocorrelation, normalisation, Gaussian smoothing.

Numpy only (its FFT is the same pocketfft librosa and scipy use), so the analysis path loads neither scipy
nor librosa/numba. Each function states which reference computation it matches; tests/test_dsp.py checks
them against it.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def periodic_hann(n: int) -> np.ndarray:
    """The periodic ("DFT-even") Hann window of ``n`` samples, float64 ``(n,)``.

    ``w[k] = 0.5 - 0.5 cos(2 pi k / n)``: the symmetric window of ``n + 1`` points without its last one, as
    ``scipy.signal.get_window("hann", n, fftbins=True)`` computes it (a cosine sum over ``linspace(-pi, pi)``).
    """
    if n <= 0:
        return np.zeros(0)
    if n == 1:
        return np.ones(1)
    phase = np.linspace(-np.pi, np.pi, n + 1)[:n]
    return 0.5 + 0.5 * np.cos(phase)


def frame(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """A read-only strided view of ``x`` (1-D, ``n`` samples) as ``(frame_length, 1 + (n - frame_length) //
    hop_length)`` frames, one per column: column ``t`` is ``x[t * hop_length: t * hop_length + frame_length]``.

    No copy and no padding (``librosa.util.frame`` on the last axis). Raises ValueError when ``x`` is shorter
    than one frame.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"frame() takes a 1-D array, not shape {x.shape}")
    if hop_length < 1:
        raise ValueError(f"hop_length must be positive, not {hop_length}")
    if len(x) < frame_length:
        raise ValueError(f"input of {len(x)} samples is too short for frames of {frame_length}")
    count = 1 + (len(x) - frame_length) // hop_length
    stride = x.strides[0]
    return as_strided(x, shape=(frame_length, count), strides=(stride, stride * hop_length), writeable=False)


def next_fast_len(n: int) -> int:
    """The smallest 5-smooth number (``2^a 3^b 5^c``) at least ``n``: a length pocketfft transforms fast
    (what ``scipy.fft.next_fast_len(n, real=True)`` returns)."""
    if n <= 6:
        return max(n, 1)
    best = 1 << (n - 1).bit_length()  # a power of two is always a candidate
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # the smallest power of two that brings p35 to n or more
            quotient = -(-n // p35)
            candidate = p35 * (1 << (quotient - 1).bit_length())
            best = min(best, candidate)
            p35 *= 3
        p5 *= 5
    return best


def autocorrelate(y: np.ndarray, axis: int = -1) -> np.ndarray:
    """The (unnormalised, biased) autocorrelation of real ``y`` along ``axis``, lags ``0 .. n - 1``, same shape.

    ``r[k] = sum_t y[t] y[t + k]``, computed as the inverse FFT of the power spectrum with zero padding to at
    least ``2 n - 1`` samples (no circular wrap): the Wiener-Khinchin theorem, as ``librosa.autocorrelate``.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[axis]
    n_pad = next_fast_len(2 * n - 1)
    spectrum = np.fft.rfft(y, n=n_pad, axis=axis)
    power = spectrum.real**2 + spectrum.imag**2
    full = np.fft.irfft(power, n=n_pad, axis=axis)
    return np.take(full, np.arange(n), axis=axis)


def normalize_peak(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """``x`` divided by its largest absolute value along ``axis`` (the infinity norm), same shape and dtype.

    Slices whose peak is under the smallest normal number of the dtype are left as they are (divided by 1),
    as ``librosa.util.normalize(x, norm=np.inf, axis=axis)`` does.
    """
    x = np.asarray(x)
    if not np.all(np.isfinite(x)):
        raise ValueError("normalize_peak needs finite input")
    peak = np.max(np.abs(x).astype(np.float64), axis=axis, keepdims=True)
    peak[peak < np.finfo(x.dtype).tiny] = 1.0
    out = np.empty_like(x)
    out[...] = x / peak
    return out


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The sampled Gaussian ``exp(-x^2 / (2 sigma^2))`` for integer ``x`` within ``int(truncate * sigma + 0.5)``
    of 0, normalised to sum 1, float64 (``scipy.ndimage``'s kernel for ``gaussian_filter1d``)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 / (float(sigma) * float(sigma)) * x.astype(np.float64) ** 2)
    return kernel / kernel.sum()


def gaussian_filter1d(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """1-D ``x`` smoothed by a Gaussian of standard deviation ``sigma`` (samples), float64, same length.

    The edges are extended by mirroring about the half-sample point (``d c b a | a b c d | d c b a``), so
    this is ``scipy.ndimage.gaussian_filter1d(x, sigma)`` with its defaults (``mode="reflect"``,
    ``truncate=4.0``).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"gaussian_filter1d takes a 1-D array, not shape {x.shape}")
    kernel = gaussian_kernel(sigma, truncate)
    radius = len(kernel) // 2
    if radius == 0 or x.size == 0:
        return x * kernel[radius] if x.size else x.copy()
    padded = np.pad(x, radius, mode="symmetric")
    return np.convolve(padded, kernel[::-1], mode="valid")
