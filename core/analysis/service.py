"""The analysis service: one decode, one STFT, every requested feature derived from them.

``analyze(path, features, progress)`` decodes the file once to mono at ``SAMPLE_RATE``, computes
the magnitude STFT once, and derives everything from those two: the mel spectrogram (MFCC and
the onset envelope, from which tempo, beats and energy follow), RMS and the spectral shape
(centroid, roll-off, bandwidth, contrast) straight from the STFT. The one other transform is a
constant-Q transform for chroma and key (pitch needs a log-frequency axis the 2048-point STFT
cannot resolve in the bass); its tuning offset is estimated from the STFT. Each intermediate is
computed lazily, only when a requested feature needs it, and at most once.

Frame-wise arrays (MFCC, chroma, and the RMS and spectral centroid curves that come with the energy and
spectral features) are averaged over blocks of frames down to at most ``MAX_FRAME_RATE`` frames a second,
so a 10-minute track's result stays a few hundred KB; the rate is reported as ``frame_rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.analysis import constant_q, pitch, spectrum
from core.analysis import energy as energy_mod
from core.analysis import key as key_mod
from core.analysis import structure as structure_mod
from core.analysis import tempo as tempo_mod
from core.analysis.decode import load_mono
from core.analysis.features import check_tempo_range, parse_features
from core.progress import BadInput, ProgressFn, no_progress

SAMPLE_RATE = 22050
N_FFT = 2048
HOP_LENGTH = 512
FPS = SAMPLE_RATE / HOP_LENGTH
N_MELS = 128
N_MFCC = 13
LOW_MEL_BANDS = 10  # of N_MELS up to 11025 Hz: up to ~200 Hz
SNARE_MEL_BANDS = slice(40, 96)  # ~1-5 kHz: a snare's or clap's noise, above the kick and under most hats
# Constant-Q for chroma and key: C1 (32.7 Hz) upwards, 7 octaves, 3 bins per semitone.
CQT_FMIN = pitch.note_to_hz("C1")
CQT_BINS_PER_OCTAVE = 36
CQT_OCTAVES = 7
MAX_FRAME_RATE = 2.0
MAX_SECONDS = 20 * 60.0  # longer files are analysed over their first 20 minutes
MIN_SECONDS = 1.0  # shorter clips are refused: no feature means anything over a few frames
MIN_TEMPO_SECONDS = 3.0  # a tempo needs several beats
SILENCE_PEAK = 1e-4  # -80 dBFS: below this everywhere, the file is treated as silent
_BLOCK_FRAMES = 1024  # the STFT is computed ~24 s at a time
_TUNING_FRAMES = 1000  # frames the tuning estimate looks at
_CQT_BLOCK_SECONDS = 30.0
_CQT_MARGIN_FRAMES = 128  # ~3 s: the lowest CQT filter (C1, 36 bins an octave) is ~1.6 s long


@dataclass
class _Spectrogram:
    """What the analysis keeps of the magnitude STFT: the mel power, RMS, the spectral sums and a sample of
    frames for the tuning estimate. The STFT itself is computed block by block and dropped (see _Signal)."""

    mel_power: np.ndarray  # (N_MELS, frames) float32
    rms: np.ndarray  # (frames,)
    tuning_frames: np.ndarray  # (1 + N_FFT // 2, <= _TUNING_FRAMES) magnitude columns spread over the track
    spectral_sums: dict[str, Any] | None  # centroid, rolloff, bandwidth (Hz summed over frames), contrast (7,)
    centroid: np.ndarray | None  # (frames,) spectral centroid (Hz) per frame, with the spectral sums


def _padded_segment(y: np.ndarray, first: int, end: int, frame_length: int, mode: str) -> np.ndarray:
    """The samples frames ``[first, end)`` of a centred framing cover: ``y`` padded by ``frame_length // 2``
    on both sides (zeros for ``mode="constant"``, the end samples for ``"edge"``), without padding all of y."""
    pad = frame_length // 2
    start, stop = first * HOP_LENGTH - pad, (end - 1) * HOP_LENGTH + frame_length - pad
    left, right = max(0, -start), max(0, stop - len(y))
    core = y[max(0, start): min(len(y), stop)]
    if not left and not right:
        return core
    return np.pad(core, (left, right), mode=mode)


class _Signal:
    """The decoded signal and the transforms derived from it, each computed on first use.

    Memory: the full STFT of a track is never held. One pass over it, ``_BLOCK_FRAMES`` frames at a time,
    keeps only what the features need (the mel power is 128 rows instead of 1025); the constant-Q transform
    is computed over blocks of ``_CQT_BLOCK_SECONDS`` with margins long enough for its longest filter. So the
    temporaries are a block's, whatever the length of the track (see bench/analysis.py for the figure).
    """

    def __init__(self, y: np.ndarray, spectral: bool = True) -> None:
        self.y = y
        self.frames = 1 + len(y) // HOP_LENGTH
        self.spectral = spectral

    @cached_property
    def spectrogram(self) -> _Spectrogram:
        total = self.frames
        mel = np.empty((N_MELS, total), dtype=np.float32)
        rms = np.empty(total, dtype=np.float32)
        step = max(1, total // _TUNING_FRAMES)
        picked: list[np.ndarray] = []
        sums: dict[str, Any] | None = ({"centroid": 0.0, "rolloff": 0.0, "bandwidth": 0.0, "contrast": np.zeros(7)}
                                      if self.spectral else None)
        centroids = np.empty(total, dtype=np.float32) if self.spectral else None
        mel_basis = spectrum.mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS)
        for first in range(0, total, _BLOCK_FRAMES):
            end = min(total, first + _BLOCK_FRAMES)
            segment = _padded_segment(self.y, first, end, N_FFT, "constant")
            magnitude = spectrum.stft_magnitude(segment, N_FFT, HOP_LENGTH)
            mel[:, first:end] = spectrum.filterbank_power(mel_basis, magnitude**2)
            rms[first:end] = spectrum.rms(magnitude, N_FFT)
            offset = (-first) % step
            picked.append(magnitude[:, offset::step].copy())  # a copy: a view would keep the whole block
            if sums is not None:
                centroid = spectrum.spectral_centroid(magnitude, SAMPLE_RATE, N_FFT)
                sums["centroid"] += float(centroid.sum())
                assert centroids is not None
                centroids[first:end] = centroid
                sums["rolloff"] += float(spectrum.spectral_rolloff(magnitude, SAMPLE_RATE, N_FFT).sum())
                sums["bandwidth"] += float(spectrum.spectral_bandwidth(magnitude, SAMPLE_RATE, N_FFT, centroid).sum())
                # Per block, as before: the contrast's dB floor is 80 dB under the block's loudest band.
                sums["contrast"] += spectrum.spectral_contrast(magnitude, SAMPLE_RATE, N_FFT).sum(axis=1)
        return _Spectrogram(mel, rms, np.concatenate(picked, axis=1), sums, centroids)

    @property
    def mel_power(self) -> np.ndarray:
        return self.spectrogram.mel_power

    @property
    def rms(self) -> np.ndarray:
        return self.spectrogram.rms

    @cached_property
    def onset_env(self) -> np.ndarray:
        return tempo_mod.onset_envelope(self.mel_power, SAMPLE_RATE, HOP_LENGTH)

    @cached_property
    def low_onset_env(self) -> np.ndarray:
        """Onset strength of the mel bands under ~200 Hz (kick and bass): what marks a downbeat."""
        return tempo_mod.onset_envelope(self.mel_power[:LOW_MEL_BANDS], SAMPLE_RATE, HOP_LENGTH)

    @cached_property
    def snare_onset_env(self) -> np.ndarray:
        """Onset strength of the mel bands from ~1 to ~5 kHz: a snare's or a clap's crack (the backbeat)."""
        return tempo_mod.onset_envelope(self.mel_power[SNARE_MEL_BANDS], SAMPLE_RATE, HOP_LENGTH)

    @cached_property
    def chroma(self) -> np.ndarray:
        return constant_q.chroma_from_cqt(self.cqt, CQT_BINS_PER_OCTAVE, CQT_FMIN)

    @cached_property
    def mfcc(self) -> np.ndarray:
        return spectrum.mfcc(spectrum.power_to_db(self.mel_power), N_MFCC)

    @cached_property
    def zero_crossing_rate(self) -> float:
        """Mean zero-crossing rate per sample over the frames, as librosa's (centred, edge-padded) computes it:
        each block's frames from a segment padded with its edge samples (_padded_segment)."""
        total = 0.0
        for first in range(0, self.frames, _BLOCK_FRAMES):
            end = min(self.frames, first + _BLOCK_FRAMES)
            segment = _padded_segment(self.y, first, end, N_FFT, "edge")
            total += float(spectrum.zero_crossing_rate(segment, N_FFT, HOP_LENGTH).sum())
        return total / self.frames

    @cached_property
    def tuning(self) -> float:
        """Deviation from A440 in semitones (-0.5..0.5), so the CQT bins sit on the track's own pitches."""
        # Tuning is one figure for the whole track: a thousand frames spread over it tell it as well as all
        # of them, and keep the peak picking's temporaries small on a long track. No pitched partial at all
        # (a DC offset, noise) gives 0.
        tuning = pitch.estimate_tuning(self.spectrogram.tuning_frames, SAMPLE_RATE, N_FFT, bins_per_octave=12)
        return float(tuning) if np.isfinite(tuning) else 0.0

    @cached_property
    def cqt(self) -> np.ndarray:
        """The constant-Q magnitude ``(bins, frames)`` float32, computed over blocks of the signal (each with
        ``_CQT_MARGIN_FRAMES`` of context either side, more than the longest filter reaches), so its
        temporaries are a block's."""
        kw = {"sr": SAMPLE_RATE, "hop_length": HOP_LENGTH, "fmin": CQT_FMIN,
              "n_bins": CQT_OCTAVES * CQT_BINS_PER_OCTAVE, "bins_per_octave": CQT_BINS_PER_OCTAVE,
              "tuning": self.tuning * CQT_BINS_PER_OCTAVE / 12}
        block = int(_CQT_BLOCK_SECONDS * SAMPLE_RATE / HOP_LENGTH)
        if self.frames <= block + 2 * _CQT_MARGIN_FRAMES:
            return constant_q.cqt_magnitude(self.y, **kw)
        out = np.empty((kw["n_bins"], self.frames), dtype=np.float32)
        for first in range(0, self.frames, block):
            end = min(self.frames, first + block)
            lead = min(first, _CQT_MARGIN_FRAMES)
            start = (first - lead) * HOP_LENGTH
            stop = min(len(self.y), (end + _CQT_MARGIN_FRAMES) * HOP_LENGTH)
            part = constant_q.cqt_magnitude(self.y[start:stop], **kw)
            out[:, first:end] = part[:, lead: lead + end - first]
        return out


def _pool(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average (rows, n) over consecutive blocks of ``factor`` columns (the last block may be shorter)."""
    if factor <= 1:
        return frames
    n = frames.shape[1]
    starts = np.arange(0, n, factor)
    sums = np.add.reduceat(frames, starts, axis=1)
    counts = np.diff(np.append(starts, n))
    return sums / counts


def _rows(frames: np.ndarray, decimals: int) -> list[list[float]]:
    return np.round(frames.astype(np.float64), decimals).tolist()


def _pool_factor() -> int:
    return math.ceil(FPS / MAX_FRAME_RATE)


def analyze(path: str | Path, features: Any = None, progress: ProgressFn = no_progress,
            tempo_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """Analyse one audio file; returns a JSON-ready dict (the fields are listed in core/analysis/__init__.py).
    ``tempo_range`` (min, max BPM) counts the beat at the metrical level inside it (``tempo.fold_into``).

    Raises ``core.errors.InvalidInput`` for unknown feature names or a tempo range that is not an octave within
    30-300 BPM (``check_tempo_range``), and ``core.progress.BadInput`` for a file that cannot be decoded or is
    too short; a silent file gives a result whose notes say so.
    """
    wanted = parse_features(features)
    if tempo_range is not None:
        tempo_range = check_tempo_range(*tempo_range)
    progress(0, "decoding audio")
    y = load_mono(Path(path), SAMPLE_RATE, MAX_SECONDS)
    duration = len(y) / SAMPLE_RATE
    if duration < MIN_SECONDS:
        raise BadInput(f"The audio is only {duration:.2f} s long; analysis needs at least {MIN_SECONDS:g} s")
    run = _Run(_Signal(y, spectral="spectral" in wanted), duration, tempo_range)
    run.result["features_analyzed"] = list(wanted)
    if tempo_range is not None:
        run.result["tempo_range"] = list(tempo_range)
        if not {"tempo", "structure"} & set(wanted):
            run.notes.append("The tempo range was not used: neither tempo nor structure was asked for")
    progress(10, "computing the spectrogram")
    _ = run.sig.spectrogram
    for i, feature in enumerate(wanted):
        progress(20 + 75 * i / len(wanted), f"measuring {feature}")
        getattr(run, feature)()
    if "features" in run.result:
        run.result["frame_rate"] = round(FPS / _pool_factor(), 4)
    run.result["notes"] = run.notes
    progress(100, "analysis complete")
    return run.result


class _Run:
    """One analysis: the signal, the result being filled and the notes for the reader, one method per feature."""

    def __init__(self, sig: _Signal, duration: float, tempo_range: tuple[float, float] | None = None) -> None:
        self.sig = sig
        self.duration = duration
        self.tempo_range = tempo_range
        self.anchor: tuple[int, float] | None = None  # the bars of the grid found, when the beat is counted anew
        self.silent = float(np.max(np.abs(sig.y))) < SILENCE_PEAK
        self.result: dict[str, Any] = {"duration": round(duration, 3), "sample_rate": SAMPLE_RATE}
        self.notes: list[str] = []
        self.estimate: tempo_mod.TempoEstimate | None = None
        self._beat_times: np.ndarray | None = None
        self.beat_note: str | None = None
        if self.silent:
            self.notes.append("The audio is silent: there is no tempo, key or spectral shape to measure")
        if duration >= MAX_SECONDS - 1.0 / SAMPLE_RATE:
            self.notes.append(f"Only the first {MAX_SECONDS / 60:g} minutes were analysed")

    def _frames(self, name: str, frames: np.ndarray, decimals: int) -> None:
        self.result.setdefault("features", {})[name] = _rows(_pool(frames, _pool_factor()), decimals)

    def _curve(self, name: str, values: np.ndarray, decimals: int) -> None:
        """One value per frame (RMS, centroid) as a flat list at ``frame_rate``, under ``features``."""
        self._frames(name, values[np.newaxis, :], decimals)
        self.result["features"][name] = self.result["features"][name][0]

    def _beats(self) -> np.ndarray | None:
        """Beat times (s), or None without a tempo (with the reason in ``self.beat_note``); computed once."""
        if self._beat_times is not None or self.beat_note is not None:
            return self._beat_times
        if self.silent:
            self.beat_note = ""
            return None
        if self.duration < MIN_TEMPO_SECONDS:
            self.beat_note = f"Too short to measure a tempo (needs at least {MIN_TEMPO_SECONDS:g} s)"
            return None
        self.estimate = tempo_mod.estimate_tempo(self.sig.onset_env, FPS)
        if self.estimate.reason == tempo_mod.NO_ONSETS:
            self.beat_note = ("No onsets: the audio is a steady sound (a constant level, a held tone or chord); "
                              "it has no tempo, beats or bars")
            return None
        if self.estimate.bpm is None:
            self.beat_note = "No steady beat found: tempo not determined"
            return None
        self.estimate = tempo_mod.commensurate_tempo(self.estimate, self.sig.onset_env,
                                                     tempo_mod.harmonic_change(self.sig.chroma), FPS)
        self._beat_times = tempo_mod.beat_times(self.sig.onset_env, SAMPLE_RATE, HOP_LENGTH, self.estimate.bpm)
        if self.tempo_range is not None:
            self._beat_times = self._fold_tempo(self._beat_times, *self.tempo_range)
        return self._beat_times

    def _fold_tempo(self, beats: np.ndarray, low: float, high: float) -> np.ndarray:
        """The beats counted at the level inside the caller's range, saying so in a note: every other (every
        fourth ...) beat of the grid found, from its first downbeat, or that grid with beats between; the bars
        keep the found grid's bar lines (``self.anchor``, for ``structure``). Sets ``self.estimate`` to the tempo
        counted."""
        assert self.estimate is not None and self.estimate.bpm is not None
        found = self.estimate.bpm
        bpm = tempo_mod.fold_into(found, low, high)
        if bpm == found:
            return beats
        self.anchor = structure_mod.bar_grid(beats, self.sig.onset_env, self.sig.low_onset_env, self.sig.chroma, FPS,
                                             self.sig.snare_onset_env)
        counted = round(bpm, 2)
        level = {2: "half time", 4: "quarter time", 0.5: "double time", 0.25: "four times the tempo"}.get(
            round(found / bpm, 2), "another level")
        self.notes.append(f"Counted in {level}: the beat found at {round(found, 2):.1f} BPM is counted at "
                          f"{counted:.1f} BPM (asked for {low:.0f}–{high:.0f} BPM)")
        self.estimate = tempo_mod.TempoEstimate(bpm, self.estimate.confidence)
        if bpm < found:
            step = round(found / bpm)
            first = int(np.argmin(np.abs(beats - self.anchor[1]))) if self.anchor else 0
            return beats[first % step:: step]
        between = round(bpm / found)
        return np.interp(np.arange(0, len(beats) - 1 + 1e-9, 1.0 / between), np.arange(len(beats)), beats)

    def _note(self, note: str | None) -> None:
        if note and note not in self.notes:
            self.notes.append(note)

    def tempo(self) -> None:
        self.result.update(tempo=None, tempo_confidence=0.0, beats=[])
        beats = self._beats()
        if self.estimate is not None and self.estimate.reason != tempo_mod.NO_ONSETS:
            self.result["tempo_confidence"] = round(self.estimate.confidence, 4)
        if beats is None:
            self._note(self.beat_note)
            return
        assert self.estimate is not None and self.estimate.bpm is not None
        self.result["tempo"] = round(self.estimate.bpm, 2)
        self.result["beats"] = np.round(beats, 3).tolist()

    def structure(self) -> None:
        self.result.update(downbeats=[], beats_per_bar=None, sections=[], loops=[])
        beats = self._beats()
        if beats is None:
            self._note(self.beat_note)
            return
        found = structure_mod.analyse_structure(beats, self.sig.onset_env, self.sig.low_onset_env, self.sig.chroma,
                                                self.sig.mfcc, self.sig.rms, FPS, self.duration, self.anchor,
                                                self.sig.snare_onset_env)
        self.result.update(downbeats=found.downbeats, beats_per_bar=found.beats_per_bar, sections=found.sections,
                           loops=found.loops)
        for note in found.notes:
            self._note(note)

    def key(self) -> None:
        self.result.update(key=None, key_confidence=None, key_candidates=[])
        if self.silent:
            return
        estimate = key_mod.estimate_key_from_cqt(self.sig.cqt, CQT_BINS_PER_OCTAVE, CQT_FMIN, FPS)
        self.result["key_candidates"] = [{"key": k, "score": s} for k, s in estimate.candidates]
        if estimate.key is None:
            self.notes.append("No clear tonal centre: key not determined")
            return
        self.result["key"] = estimate.key
        self.result["key_confidence"] = round(estimate.confidence, 4)

    def energy(self) -> None:
        if self.silent:
            self.result.update(energy=0.0, zero_crossing_rate=0.0)
            return
        self.result["energy"] = round(energy_mod.energy(self.sig.rms, self.sig.onset_env), 4)
        self.result["zero_crossing_rate"] = round(self.sig.zero_crossing_rate, 5)
        self._curve("rms", self.sig.rms, 5)

    def spectral(self) -> None:
        if self.silent:
            self.result.update(spectral_centroid=None, spectral_rolloff=None, spectral_bandwidth=None,
                               spectral_contrast=None)
            return
        # Summed over the frames in the one pass over the STFT (_Signal.spectrogram): every one is frame-wise.
        sums = self.sig.spectrogram.spectral_sums
        assert sums is not None
        total = self.sig.frames
        self.result["spectral_centroid"] = round(sums["centroid"] / total, 2)
        self.result["spectral_rolloff"] = round(sums["rolloff"] / total, 2)
        self.result["spectral_bandwidth"] = round(sums["bandwidth"] / total, 2)
        self.result["spectral_contrast"] = np.round(sums["contrast"] / total, 3).tolist()
        assert self.sig.spectrogram.centroid is not None
        self._curve("centroid", self.sig.spectrogram.centroid, 1)

    def mfcc(self) -> None:
        self._frames("mfcc", self.sig.mfcc, 2)

    def chroma(self) -> None:
        if self.silent:  # the CQT of silence is all zeros: skip computing it
            self._frames("chroma", np.zeros((12, 1 + len(self.sig.y) // HOP_LENGTH)), 3)
            return
        self._frames("chroma", self.sig.chroma, 3)
