"""The constant-Q transform magnitude, and chroma folded from it.

``cqt_magnitude`` is the multi-rate CQT of Schörkhuber & Klapuri ("Constant-Q transform toolbox for music
processing", SMC 2010) with the filter design, normalisation and sparsification of ``librosa.cqt`` 0.11 at its
defaults (Hann-windowed complex exponentials, L1-normalised, ``filter_scale=1``, ``sparsity=0.01``,
``scale=True``, zero padding, soxr "HQ" halving between octaves), so its magnitudes match librosa's to float
rounding. The top octave's filters are applied to an FFT frame of the signal; each lower octave reuses the same
filters on the signal low-passed and decimated by two (and the hop halved), so every filter is short in
samples.

Implemented with numpy and soxr (the resampler the decoder already uses). librosa keeps each octave's filter
spectra as a scipy sparse matrix (each filter is a few bins wide once its smallest 1 % is dropped); here they are
kept as rows of (bin, coefficient) pairs and applied with numpy, accumulating in complex64 in ascending bin
order as scipy's CSR product does. No BLAS call: a dense complex product would be ~20 times the work, and
OpenBLAS' threads slow to a crawl when the cores are busy with other work.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import soxr

from core.analysis.dsp import frame, periodic_hann
from core.analysis.pitch import hz_to_midi, note_to_hz

# Equivalent noise bandwidth of the Hann window in bins (n * sum(w^2) / sum(w)^2 for n = 1000, periodic),
# the figure librosa.filters.window_bandwidth tabulates for it.
HANN_BANDWIDTH = 1.50018310546875
# Frames of the octave's STFT transformed per FFT call (bounds the float64 temporaries).
_FFT_COLUMNS = 512


def cqt_frequencies(n_bins: int, fmin: float, bins_per_octave: int) -> np.ndarray:
    """Centre frequencies (Hz) of the CQT bins, ``(n_bins,)`` float64: ``fmin * 2^(k / bins_per_octave)``,
    formed as octave times ratio within the octave, as ``librosa.interval_frequencies(intervals="equal")``."""
    octaves = math.ceil(n_bins / bins_per_octave)
    ratios = 2.0 ** (np.arange(0, bins_per_octave, dtype=float) / bins_per_octave)
    return np.sort(np.multiply.outer(2.0 ** np.arange(octaves), ratios).flatten()[:n_bins]) * fmin


def relative_bandwidth(freqs: np.ndarray) -> np.ndarray:
    """Per bin, ``alpha = (r^2 - 1) / (r^2 + 1)`` with ``r = 2^(1 / bpo)`` and ``bpo`` the local bins per octave
    (from the neighbouring bins; one-sided at the ends): the filter bandwidth relative to the centre frequency
    that makes neighbouring filters meet (``librosa.filters._relative_bandwidth``). Needs 2 or more bins."""
    if len(freqs) < 2:
        raise ValueError("a relative bandwidth needs two or more frequencies")
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def filter_lengths(freqs: np.ndarray, sr: float, alpha: np.ndarray) -> tuple[np.ndarray, float]:
    """``(lengths, cutoff)``: each filter's length in samples at ``sr``, ``Q sr / f`` with ``Q = 1 / alpha``
    (``filter_scale`` 1), and the highest frequency (Hz) any filter passes, ``max f (1 + B / (2 Q))`` with ``B``
    the Hann window's bandwidth (``librosa.filters.wavelet_lengths``, ``gamma=0``)."""
    q = 1.0 / alpha
    cutoff = float(np.max(freqs * (1 + 0.5 * HANN_BANDWIDTH / q)))
    return q * sr / freqs, cutoff


def _filter_spectra(freqs: np.ndarray, alpha: np.ndarray, sr: float, sparsity: float = 0.01) -> tuple[np.ndarray, int]:
    """``(spectra, n_fft)``: the positive-frequency spectra ``(len(freqs), 1 + n_fft // 2)`` complex64 of one
    octave's filters at ``sr`` (mostly zeros), and the FFT length (the longest filter rounded up to a power of
    two).

    Filter k is ``exp(2 pi i f_k t / sr)`` over ``lengths[k]`` samples centred on 0, Hann-windowed, divided by its
    L1 norm, centred in ``n_fft`` samples and scaled by ``lengths[k] / n_fft``; its FFT keeps, per row, only the
    coefficients whose magnitudes make up the top 99 % of the row's L1 norm (``sparsity``). As
    ``librosa.filters.wavelet`` and ``librosa.util.sparsify_rows`` (the basis in complex64, transformed in
    single precision).
    """
    lengths, _ = filter_lengths(freqs, sr, alpha)
    n_fft = int(2.0 ** np.ceil(np.log2(max(lengths))))
    basis = np.zeros((len(freqs), n_fft), dtype=np.complex64)
    for row, (length, freq) in enumerate(zip(lengths, freqs, strict=True)):
        t = np.arange(-length // 2, length // 2, dtype=float)
        angle = t * 2 * np.pi * freq / sr
        sig = (np.cos(angle) + 1j * np.sin(angle)) * periodic_hann(len(t))
        sig /= np.sum(np.abs(sig))
        start = (n_fft - len(sig)) // 2
        basis[row, start: start + len(sig)] = sig
    basis *= (lengths / float(n_fft))[:, np.newaxis]
    spectra = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1].astype(np.complex64)
    # Drop the smallest coefficients of each row that together hold under `sparsity` of its L1 norm.
    mags = np.abs(spectra)
    ordered = np.sort(mags, axis=1)
    cumulative = np.cumsum(ordered / np.sum(mags, axis=1, keepdims=True), axis=1)
    cut = np.argmin(cumulative < sparsity, axis=1)
    keep = mags >= ordered[np.arange(len(freqs)), cut][:, np.newaxis]
    return np.where(keep, spectra, 0).astype(np.complex64), n_fft


class _SparseRows(NamedTuple):
    """A matrix ``(rows, bins)`` as, per row, its nonzero bins in ascending order and their values, padded to the
    longest row with the row's last bin and 0."""

    bins: np.ndarray  # (rows, width) int64
    values: np.ndarray  # (rows, width) complex64
    n_fft: int

    @classmethod
    def of(cls, dense: np.ndarray, n_fft: int) -> _SparseRows:
        nonzero = [np.flatnonzero(row) for row in dense]
        width = max(len(nz) for nz in nonzero)
        bins = np.zeros((len(dense), width), dtype=np.int64)
        values = np.zeros((len(dense), width), dtype=dense.dtype)
        for r, nz in enumerate(nonzero):
            bins[r, : len(nz)] = nz
            bins[r, len(nz):] = nz[-1] if len(nz) else 0
            values[r, : len(nz)] = dense[r, nz]
        return cls(bins, values, n_fft)

    def dot(self, x: np.ndarray, first_bin: int = 0) -> np.ndarray:
        """``matrix @ x`` for ``x`` holding bins ``first_bin ..`` in its rows, complex64 ``(rows, columns)``,
        summed in ascending bin order (scipy's CSR ``dot``). Zero values add exact zeros for finite ``x``."""
        out = np.zeros((self.bins.shape[0], x.shape[1]), dtype=np.complex64)
        for j in range(self.bins.shape[1]):
            out += self.values[:, j, np.newaxis] * x[self.bins[:, j] - first_bin]
        return out


@lru_cache(maxsize=8)
def _octave_filters(fmin: float, n_bins: int, bins_per_octave: int, sr: float) -> tuple[_SparseRows, ...]:
    """Per octave from the top, its filters' spectra at that octave's sample rate (cached: the same for every
    block of a track)."""
    freqs = cqt_frequencies(n_bins, fmin, bins_per_octave)
    alpha = relative_bandwidth(freqs)
    octaves = math.ceil(n_bins / bins_per_octave)
    n_filters = min(bins_per_octave, n_bins)
    out = []
    my_sr = sr
    for i in range(octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        spectra, n_fft = _filter_spectra(freqs[sl], alpha[sl], my_sr)
        # Scaled by sqrt(sr / my_sr), as librosa.vqt does: with the sqrt(2) per halving of the signal
        # (_downsample) and the final 1 / sqrt(length at sr), every octave reads on the top octave's scale.
        spectra = (spectra * np.sqrt(sr / my_sr)).astype(np.complex64)
        out.append(_SparseRows.of(spectra, n_fft))
        my_sr /= 2.0
    return tuple(out)


def _downsample(y: np.ndarray, factor: int) -> np.ndarray:
    """``y`` low-passed and decimated by ``factor`` with soxr's HQ filter, ``ceil(len / factor)`` samples, scaled
    by ``sqrt(factor)`` to keep the filters' energy (``librosa.resample(y, orig_sr=factor, target_sr=1,
    res_type="soxr_hq", scale=True)``)."""
    n_out = -(-len(y) // factor)
    out = soxr.resample(y, factor, 1, quality="soxr_hq")
    if len(out) > n_out:
        out = out[:n_out]
    elif len(out) < n_out:
        out = np.pad(out, (0, n_out - len(out)))
    out /= np.sqrt(1.0 / factor)
    return np.asarray(out, dtype=y.dtype)


def _octave_response(y: np.ndarray, hop_length: int, filters: _SparseRows) -> np.ndarray:
    """``filters @ STFT(y)``: the complex response ``(bins, 1 + len(y) // hop_length)`` complex64 of one octave's
    filters, the STFT rectangular-windowed and centred (``n_fft // 2`` zeros either side), its frames transformed
    in float64 and rounded to complex64, as librosa's ``stft(window="ones")`` inside ``cqt``. Only the STFT bins
    the filters reach are kept."""
    n_fft = filters.n_fft
    padded = np.pad(y, n_fft // 2)
    frames = frame(padded, n_fft, hop_length)
    low, high = int(filters.bins.min()), int(filters.bins.max()) + 1
    band = np.empty((high - low, frames.shape[1]), dtype=np.complex64)
    for start in range(0, frames.shape[1], _FFT_COLUMNS):
        stop = min(frames.shape[1], start + _FFT_COLUMNS)
        band[:, start:stop] = np.fft.rfft(frames[:, start:stop].astype(np.float64), axis=0)[low:high]
    return filters.dot(band, first_bin=low)


def _early_downsample_count(nyquist: float, cutoff: float, hop_length: int, octaves: int) -> int:
    """How many times the whole signal can be halved before the top octave (librosa's ``__early_downsample``):
    while the filters stay under the new Nyquist and the hop stays divisible for every octave."""
    by_band = max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1)
    twos = 0
    hop = hop_length
    while hop > 0 and hop % 2 == 0:
        twos += 1
        hop //= 2
    return min(by_band, max(0, twos - octaves + 1))


def cqt_magnitude(y: np.ndarray, sr: float, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int,
                  tuning: float = 0.0) -> np.ndarray:
    """``|CQT|`` of 1-D ``y``: ``(n_bins, frames)`` float32, bin k centred on ``fmin * 2^((k + tuning) /
    bins_per_octave)`` Hz (``tuning`` in bins), frame t on sample ``t * hop_length`` (centred, zero-padded).

    ``np.abs(librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
    bins_per_octave=bins_per_octave, tuning=tuning))``: each bin is the filter response divided by
    ``sqrt(length)`` (``scale=True``), so a sinusoid of amplitude A reads about the same in every bin.
    ``hop_length`` must be divisible by 2 once per octave below the top.
    """
    y = np.asarray(y, dtype=np.float32)
    octaves = math.ceil(n_bins / bins_per_octave)
    fmin = fmin * 2.0 ** (tuning / bins_per_octave)
    freqs = cqt_frequencies(n_bins, fmin, bins_per_octave)
    alpha = relative_bandwidth(freqs)
    nyquist = sr / 2.0
    _, cutoff = filter_lengths(freqs, sr, alpha)
    if cutoff > nyquist:
        raise ValueError(f"the top CQT filter reaches {cutoff:.0f} Hz, above Nyquist ({nyquist:g} Hz)")
    if hop_length % (2 ** (octaves - 1)):
        raise ValueError(f"hop_length {hop_length} cannot be halved for each of {octaves} octaves")
    early = _early_downsample_count(nyquist, cutoff, hop_length, octaves)
    if early > 0:
        factor = 2**early
        y = _downsample(y, factor)
        hop_length //= factor
        sr = sr / factor
    responses = []
    my_y, my_hop = y, hop_length
    for i, filters in enumerate(_octave_filters(float(fmin), n_bins, bins_per_octave, float(sr))):
        responses.append(_octave_response(my_y, my_hop, filters))
        if i + 1 < octaves:
            my_hop //= 2
            my_y = _downsample(my_y, 2)
    width = min(r.shape[1] for r in responses)
    out = np.empty((n_bins, width), dtype=np.float32)
    end = n_bins
    for response in responses:
        rows = min(end, response.shape[0])
        out[end - rows: end] = np.abs(response[-rows:, :width])
        end -= rows
    lengths, _ = filter_lengths(freqs, sr, alpha)
    out /= np.sqrt(lengths)[:, np.newaxis]
    return out


def cq_to_chroma(n_input: int, bins_per_octave: int = 12, n_chroma: int = 12, fmin: float | None = None) -> np.ndarray:
    """The ``(n_chroma, n_input)`` float32 0/1 matrix that sums CQT bins into pitch classes, C first.

    Each pitch class takes the ``bins_per_octave / n_chroma`` bins centred on it in every octave, the octaves
    counted from ``fmin`` (default C1) (``librosa.filters.cq_to_chroma``, ``base_c=True``, no window).
    """
    merge = bins_per_octave / n_chroma
    if merge % 1 != 0:
        raise ValueError("bins_per_octave must be a whole multiple of n_chroma")
    merge = int(merge)
    fmin = note_to_hz("C1") if fmin is None else fmin
    one_octave = np.roll(np.repeat(np.eye(n_chroma), merge, axis=1), -(merge // 2), axis=1)
    matrix = np.tile(one_octave, math.ceil(n_input / bins_per_octave))[:, :n_input]
    roll = int(np.round(np.mod(hz_to_midi(fmin), 12) * (n_chroma / 12.0)))
    return np.roll(matrix, roll, axis=0).astype(np.float32)


def chroma_from_cqt(cqt: np.ndarray, bins_per_octave: int, fmin: float, n_chroma: int = 12) -> np.ndarray:
    """Chroma ``(n_chroma, frames)`` from a CQT magnitude ``(bins, frames)``: the bins summed into pitch classes
    (``cq_to_chroma``), negatives set to 0, each frame divided by its largest class (left as is when that is
    under the smallest normal float): ``librosa.feature.chroma_cqt(C=cqt, ...)`` with its defaults."""
    chroma = np.einsum("cf,ft->ct", cq_to_chroma(cqt.shape[0], bins_per_octave, n_chroma, fmin), cqt)  # no BLAS
    chroma[chroma < 0.0] = 0.0
    peak = np.max(np.abs(chroma).astype(np.float64), axis=0, keepdims=True)
    peak[peak < np.finfo(chroma.dtype).tiny] = 1.0
    out = np.empty_like(chroma)
    out[...] = chroma / peak
    return out
