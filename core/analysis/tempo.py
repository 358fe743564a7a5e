"""Tempo and beats from an onset-strength envelope.

Why not ``librosa.feature.tempo`` as is: its onset envelope is the spectral flux of a dB
spectrogram, in which a soft hi-hat makes as big a jump in the (otherwise silent) top bands as
a kick does at the bottom, so eighth-note hats read as the beat; and its estimate is the single
strongest autocorrelation lag under a prior centred on 120 BPM, which halves fast tracks and
doubles slow ones. What we do instead:

1. Onset strength (``onset_envelope``) is the spectral flux of a *compressed* mel spectrogram,
   ``log(1 + 1000 * mel / max(mel))``: a loudness-weighted flux with a 30 dB floor under the
   loudest frame (as in Böck's SuperFlux), so strong events (kick, snare, bass, chord changes)
   outweigh quiet ones, and the envelope does not change with the gain of the recording.
2. The tempo (``estimate_tempo``) is the period whose first ``HARMONICS`` multiples together
   collect the most autocorrelation of that envelope (a harmonic sum over a fine grid from
   ``MIN_BPM`` to ``MAX_BPM``, weighed by a weak preference for ~100 BPM, ``tempo_preference``, which
   only decides near ties between metrical levels). The autocorrelation is the mean of local ones over ~12 s windows
   (a tempogram), so it decays with lag the same way for a clip and for a whole song. A period
   half the true beat loses on the odd terms (the off-beats are weak); a period twice the beat
   reaches further into the decaying autocorrelation and loses too. Summing several multiples
   also measures the period to a fraction of a frame, which one lag cannot at 43 frames a
   second (one frame is 2.5 % at 180 BPM). The sum is taken over the autocorrelation less its
   smooth trend (``AC_DETREND_SIGMA``): a legato recording's broad lobe around lag 0 otherwise
   pulls the estimate to the fast end of the range.
3. The beat must fit the harmonic rhythm (``commensurate_tempo``): chords last a whole number of beats (or
   one and a half), so a rate that fits the chord changes no such way is replaced by the multiple of the
   harmonic rhythm the onsets favour most.
4. Beats are placed by Ellis' dynamic-programming tracker (2007) at that tempo, with the arithmetic of
   librosa's ``beat_track`` (beat_tracking.py).

No onsets, no tempo: audio without note or drum onsets (silence, a DC offset, a held tone, a pad) has an
onset envelope of numerical dust plus the transients the STFT's padding makes at the very start and end.
Those edge frames are dropped, and an envelope whose strongest onset is under ``MIN_ONSET`` (the
envelope is gain-invariant, so an absolute floor means the same for a quiet and a loud file) has no
tempo. Nor does one whose best period sits on the edge of the search range: a real beat is a peak of
the harmonic sum inside the range, while noise and slow swells only decay towards its fast end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.analysis import beat_tracking, dsp
from core.analysis.features import TEMPO_SEARCH_BPM

MIN_BPM, MAX_BPM = TEMPO_SEARCH_BPM
HARMONICS = 6
# Autocorrelation window, in onset frames (512 at 43 frames/s: ~12 s, room for 6 beats at 50 BPM),
# and the step between windows (~0.75 s).
WINDOW_FRAMES = 512
WINDOW_HOP = 32
# mel power below max/1000 (-30 dB) hardly counts: compression constant of the onset spectrogram.
ONSET_COMPRESSION = 1000.0
# Harmonic-sum score (a mean of normalised autocorrelations) under which no steady beat is reported.
MIN_CONFIDENCE = 0.05
# Strongest onset (compressed mel flux) under which audio has no onsets at all. Music with sparse notes
# measures 0.3-0.7, a legato melody alone (a flute, a violin: soft attacks, no chords) 0.09; a held chord or
# pad 0.01, a DC offset or a steady tone 0.001. (At 0.1, solo folk melodies of the real-music development set
# had no tempo although their beat is the strongest periodicity by far: 67.6 % -> 73.5 % on its version 3.)
MIN_ONSET = 0.03
# Frames at each end of the envelope that only hold the STFT's padding transients (n_fft / hop).
EDGE_FRAMES = 4
_GRID_POINTS = 4000
# Legato music (strings, voices, organ: soft attacks, overlapping notes) has a smooth onset envelope whose
# autocorrelation is a broad lobe decaying from lag 0; a harmonic sum over it grows towards short periods
# and sat on the fast edge of the range (no tempo) or on the eighth notes. Subtracting the lobe (the
# autocorrelation smoothed over this many frames, ~0.1 s) leaves the periodic peaks: on the real-music
# development set (bench/realmusic.py) 30 % -> 70 % within 4 % (its version 2, excerpts; 51.5 % -> 73.5 % on
# version 3, whole pieces), the generated set 97.9 % -> 100 %.
AC_DETREND_SIGMA = 4.0
# Detrended harmonic sum under which there is no pulse: white noise measures 0.0013-0.0016 (10 s clips),
# the most legato real music of the development set 0.003, drum tracks 0.1-0.55. A thin margin; see bench/README.
MIN_PERIODICITY = 0.0025
# Where the beat is looked for first when two metrical levels fit as well (see ``tempo_preference``).
PREFERRED_BPM = 100.0
PREFERENCE_OCTAVES = 1.5

NO_ONSETS = "no_onsets"
NO_PULSE = "no_pulse"


@dataclass(frozen=True)
class TempoEstimate:
    bpm: float | None
    confidence: float  # 0..1: mean normalised autocorrelation at the beat period's multiples
    reason: str | None = None  # why bpm is None: NO_ONSETS or NO_PULSE


def onset_envelope(mel_power: np.ndarray, sr: int, hop_length: int) -> np.ndarray:
    """Loudness-weighted spectral flux of a mel power spectrogram, one value per frame (gain-invariant)."""
    peak = float(mel_power.max())
    if peak <= 0.0:
        return np.zeros(mel_power.shape[-1], dtype=np.float32)
    compressed = np.log1p(ONSET_COMPRESSION * (mel_power / peak))
    # center=False: the spectrogram comes from a centred STFT already; librosa's default shifts the
    # envelope by another n_fft / (2 * hop) frames, which put every beat ~35 ms late.
    return beat_tracking.onset_strength(compressed, hop_length=hop_length, center=False)


def without_edges(onset_env: np.ndarray) -> np.ndarray:
    """The envelope with its first and last ``EDGE_FRAMES`` frames (padding transients) set to 0."""
    inner = onset_env.copy()
    inner[:EDGE_FRAMES] = 0.0
    inner[-EDGE_FRAMES:] = 0.0
    return inner


def has_onsets(onset_env: np.ndarray) -> bool:
    """Whether the audio has any onset worth the name (see the module's text)."""
    inner = without_edges(onset_env)
    return inner.size > 0 and float(inner.max()) >= MIN_ONSET


def estimate_tempo(onset_env: np.ndarray, fps: float) -> TempoEstimate:
    """The beat rate in BPM from an onset envelope at ``fps`` frames/s; None (with ``reason``) when the
    audio has no onsets or no steady pulse."""
    if onset_env.size <= 2 * EDGE_FRAMES or not has_onsets(onset_env):
        return TempoEstimate(None, 0.0, NO_ONSETS)
    onset_env = without_edges(onset_env)
    found = _periodicity(onset_env, fps)
    if found is None:
        return TempoEstimate(None, 0.0, NO_ONSETS)
    bpm, score, ac, period = found
    best = int(np.argmax(score * tempo_preference(bpm)))
    # The confidence is the mean plain (not detrended) autocorrelation at the chosen period's multiples.
    confidence = float(np.clip(_harmonic_sum(ac, period[best : best + 1], np.arange(len(ac)))[0], 0.0, 1.0))
    if confidence < MIN_CONFIDENCE or score[best] < MIN_PERIODICITY or best in (0, len(score) - 1):
        return TempoEstimate(None, confidence, NO_PULSE)
    return TempoEstimate(float(bpm[best]), confidence)


def tempo_preference(bpm: np.ndarray) -> np.ndarray:
    """A weak preference for beats near ``PREFERRED_BPM``: exp(-0.5 (log2(bpm / PREFERRED_BPM) / PREFERENCE_OCTAVES)²),
    0.80 one octave away. The harmonic sum of a piece whose notes run in steady eighths is as high at the eighth
    note as at the quarter (the odd multiples are no weaker), and the eighth of a slow piece won the tie; listeners
    tap the slower level in that case (the resonance of tapped tempo lies near 100-120 BPM: van Noorden &
    Moelants 1999). On the real-music development set 76.6 % -> 82.8 % within 4 % (version 2, excerpts; on
    version 3, whole pieces, it changes no answer: 73.5 % either way); the generated drum tracks (70-180 BPM) stay
    at 100 %."""
    return np.exp(-0.5 * (np.log2(bpm / PREFERRED_BPM) / PREFERENCE_OCTAVES) ** 2)


def _periodicity(envelope: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(bpm grid, score, autocorrelation, period in frames) of an envelope: the harmonic sum of its detrended
    mean local autocorrelation at every period of a geometric grid over ``MIN_BPM``-``MAX_BPM`` (see the
    module's text); None for an envelope of zeros."""
    ac = mean_local_autocorrelation(envelope)
    if ac[0] <= 1e-12:
        return None
    ac = ac / ac[0]
    bpm = np.geomspace(MIN_BPM, MAX_BPM, _GRID_POINTS)
    period = 60.0 * fps / bpm
    # The period is chosen on the autocorrelation less its smooth trend (see AC_DETREND_SIGMA).
    detrended = ac - dsp.gaussian_filter1d(ac, AC_DETREND_SIGMA)
    return bpm, _harmonic_sum(detrended, period, np.arange(len(ac))), ac, period


# --- the beat and the harmonic rhythm ---------------------------------------------------------------------

# Chords change on beats: the harmonic rhythm (one chord a beat, a half bar, a bar) is a whole number of beats,
# or one and a half in compound time. Onsets alone sometimes lock onto a rate that fits no such count (legato
# strings whose bowing makes a pulse at 3.3 beats, a tempo 7 % off a fast tatum), and then the harmonic rhythm
# tells the beat. The harmonic rhythm is the strongest periodicity of the chroma flux up to
# ``HARMONIC_RHYTHM_MAX_BPM`` (a chord lasts at least ~0.6 s); it is trusted where that periodicity is at least
# ``MIN_HARMONIC_PERIODICITY`` (chord changes are regular). On the real-music development set this fixed 2
# pieces of 64 (76.6 % within 4 %, was 73.4 %) and changed no right answer (version 3 of the set, whole pieces:
# 67.6 % -> 73.5 %); the generated set is unchanged (bench/README.md).
HARMONIC_RHYTHM_MAX_BPM = 100.0
MIN_HARMONIC_PERIODICITY = 0.015
BEATS_PER_CHORD = (1.0, 1.5, 2.0, 3.0, 4.0)
COMMENSURATE_TOLERANCE = 0.04
CHROMA_SMOOTHING = 5  # frames (~0.12 s) a chroma vector is averaged over before its flux: notes, not attacks


def harmonic_change(chroma: np.ndarray) -> np.ndarray:
    """(frames,) chroma flux: the summed increase of a (12, frames) chroma, each row first averaged over
    ``CHROMA_SMOOTHING`` frames; high where the harmony changes."""
    kernel = np.ones(CHROMA_SMOOTHING) / CHROMA_SMOOTHING
    smooth = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, chroma)
    rise = np.diff(smooth, axis=1, prepend=smooth[:, :1])
    return np.maximum(rise, 0.0).sum(axis=0)


def commensurate_tempo(estimate: TempoEstimate, onset_env: np.ndarray, change_env: np.ndarray,
                       fps: float) -> TempoEstimate:
    """``estimate`` when its beat fits the harmonic rhythm of ``change_env`` (``harmonic_change`` of the same
    frames) a whole number of times (``BEATS_PER_CHORD``); otherwise the multiple of the harmonic rhythm that
    the onset envelope's periodicity favours. Unchanged without a tempo or without a regular harmonic rhythm."""
    if estimate.bpm is None or change_env.size <= 2 * EDGE_FRAMES:
        return estimate
    harmony = _periodicity(without_edges(change_env), fps)
    onsets = _periodicity(without_edges(onset_env), fps)
    if harmony is None or onsets is None:
        return estimate
    bpm, harmony_score, _, _ = harmony
    slow = bpm <= HARMONIC_RHYTHM_MAX_BPM
    if float(harmony_score[slow].max()) < MIN_HARMONIC_PERIODICITY:
        return estimate
    chord_rate = float(bpm[slow][np.argmax(harmony_score[slow])])
    ratio = estimate.bpm / chord_rate
    if any(abs(ratio / beats - 1.0) <= COMMENSURATE_TOLERANCE for beats in BEATS_PER_CHORD):
        return estimate
    candidates = [chord_rate * beats for beats in BEATS_PER_CHORD if MIN_BPM <= chord_rate * beats <= MAX_BPM]
    scores = [float(np.interp(c, bpm, onsets[1] * tempo_preference(bpm))) for c in candidates]
    return TempoEstimate(candidates[int(np.argmax(scores))], estimate.confidence)


def _harmonic_sum(ac: np.ndarray, period: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Mean of ``ac`` at the first ``HARMONICS`` multiples of every period (in frames)."""
    return sum(np.interp(k * period, lags, ac, right=0.0) for k in range(1, HARMONICS + 1)) / HARMONICS


def mean_local_autocorrelation(onset_env: np.ndarray) -> np.ndarray:
    """The mean of windowed, normalised autocorrelations over ~12 s windows (the mean of a tempogram).

    Averaging local autocorrelations gives the same decay with lag whatever the length of the track,
    so a 10-second clip and a 5-minute song weigh long periods alike. This is what
    ``librosa.feature.tempogram(...).mean(axis=1)`` computes, with the same padding, Hann window and
    per-window normalisation, but with windows every ``WINDOW_HOP`` frames instead of every frame:
    the mean is the same, and a 10-minute track needs a few MB instead of a few hundred.
    """
    half = WINDOW_FRAMES // 2
    padded = np.pad(onset_env.astype(np.float64), half, mode="linear_ramp", end_values=0)
    hop = min(WINDOW_HOP, max(1, len(onset_env)))
    frames = dsp.frame(padded, WINDOW_FRAMES, hop)
    frames = frames * dsp.periodic_hann(WINDOW_FRAMES)[:, None]
    ac = dsp.normalize_peak(dsp.autocorrelate(frames, axis=0), axis=0)
    return ac.mean(axis=1)


def fold_into(bpm: float, low: float, high: float) -> float:
    """``bpm`` halved or doubled until it lies in ``low``-``high`` (a range of at least an octave): the same beat
    counted at the metrical level a caller asked for, as the "x2" and "/2" of DJ software do. ValueError for a
    tempo or range that is not positive."""
    if not (bpm > 0 and 0 < low <= high):
        raise ValueError(f"fold_into needs a positive tempo and range, not {bpm} in {low}-{high}")
    while bpm > high:
        bpm /= 2.0
    while bpm < low:
        bpm *= 2.0
    return bpm


def beat_times(onset_env: np.ndarray, sr: int, hop_length: int, bpm: float) -> np.ndarray:
    """Beat positions in seconds, tracked at ``bpm``."""
    beats = beat_tracking.beat_track(onset_env, sr=sr, hop_length=hop_length, bpm=bpm)
    return np.asarray(beats, dtype=np.float64)
