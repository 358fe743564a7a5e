"""Synthesised music with known ground truth, for the analysis tests and bench/analysis.py.

Everything is rendered from scratch with numpy, so the tempo and key of each clip are
facts of its construction, not labels someone guessed:

* drums: a kick (a pitch-swept sine), a snare (tone plus noise) and hats (high-passed
  noise), placed on a 16-step grid by a few common patterns, at an exact BPM;
* a click track: a beep on every beat, the downbeat higher;
* harmony: triads rendered with harmonic tones (several partials, decaying envelope)
  and a bass line on the chord roots, following a cadential progression in a major
  or minor key (I-IV-V-I, i-iv-V-i and similar: the minor V has the raised leading tone).

Every generator takes a seeded ``numpy.random.Generator`` where noise is involved, so
the same arguments render the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Progressions as (scale step in semitones above the tonic, chord quality), one chord per bar.
MAJOR_PROGRESSIONS: tuple[tuple[tuple[int, str], ...], ...] = (
    ((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),  # I-IV-V-I
    ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),  # I-vi-IV-V
    ((0, "maj"), (2, "min"), (7, "maj"), (0, "maj")),  # I-ii-V-I
)
MINOR_PROGRESSIONS: tuple[tuple[tuple[int, str], ...], ...] = (
    ((0, "min"), (5, "min"), (7, "maj"), (0, "min")),  # i-iv-V-i
    ((0, "min"), (8, "maj"), (5, "min"), (7, "maj")),  # i-VI-iv-V
    ((0, "min"), (2, "dim"), (7, "maj"), (0, "min")),  # i-ii°-V-i
)
_TRIADS = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6)}

# Drum patterns on a 16-step bar: instrument -> [(step, velocity), ...].
PATTERNS: dict[str, dict[str, list[tuple[int, float]]]] = {
    # kick on 1 and 3, snare on 2 and 4, eighth-note hats
    "rock": {
        "kick": [(0, 1.0), (8, 1.0)],
        "snare": [(4, 0.9), (12, 0.9)],
        "hat": [(s, 0.35 if s % 4 == 0 else 0.25) for s in range(0, 16, 2)],
    },
    # four on the floor, clap-like snare on 2 and 4, off-beat hats
    "four": {
        "kick": [(0, 1.0), (4, 1.0), (8, 1.0), (12, 1.0)],
        "snare": [(4, 0.7), (12, 0.7)],
        "hat": [(2, 0.4), (6, 0.4), (10, 0.4), (14, 0.4)],
    },
    # kick on 1, the "and" of 2 and 3, snare backbeat, sixteenth hats with accents
    "sixteenths": {
        "kick": [(0, 1.0), (6, 0.8), (8, 1.0)],
        "snare": [(4, 0.9), (12, 0.9)],
        "hat": [(s, 0.3 if s % 4 == 0 else (0.22 if s % 2 == 0 else 0.14)) for s in range(16)],
    },
}


@dataclass(frozen=True)
class Song:
    """A rendered clip and the truth it was built from."""

    audio: np.ndarray  # (frames, channels) float32
    sr: int
    bpm: float
    key: str  # "A minor", "F# major"

    def write(self, path: Path, subtype: str = "PCM_16") -> Path:
        sf.write(path, self.audio, self.sr, subtype=subtype)
        return path


def key_name(tonic: int, mode: str) -> str:
    return f"{PITCH_CLASSES[tonic % 12]} {mode}"


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _envelope(n: int, sr: int, attack: float, decay: float, release: float = 0.02) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)
    tail = min(n, int(release * sr))
    if tail:
        env[n - tail :] *= np.linspace(1.0, 0.0, tail)
    return env


def harmonic_tone(freq: float, seconds: float, sr: int = SR, partials: int = 6, decay: float = 1.5) -> np.ndarray:
    """A note with ``partials`` harmonics (amplitude 1/k), a soft attack and an exponential decay."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k in range(1, partials + 1):
        if k * freq >= sr / 2:
            break
        out += np.sin(2 * np.pi * k * freq * t + 0.3 * k) / k
    return out * _envelope(n, sr, attack=0.01, decay=decay)


def kick(sr: int = SR) -> np.ndarray:
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    freq = 45 + 110 * np.exp(-t / 0.03)  # 155 Hz sweeping down to 45 Hz
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return np.sin(phase) * np.exp(-t / 0.09)


def snare(rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    n = int(0.2 * sr)
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 1))  # first difference tilts the noise towards highs
    body = np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.04)
    return 0.5 * noise * np.exp(-t / 0.06) + 0.6 * body


def hat(rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    n = int(0.06 * sr)
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 2), n=2) / 2  # second difference: mostly above 5 kHz
    return noise * np.exp(-t / 0.012)


def _place(out: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    if start >= len(out):
        return
    end = min(len(out), start + len(sound))
    out[start:end] += gain * sound[: end - start]


def drums(bpm: float, seconds: float, style: str = "rock", sr: int = SR, seed: int = 0) -> np.ndarray:
    """A drum loop at exactly ``bpm`` (a beat is a quarter note; 16 steps a bar)."""
    rng = np.random.default_rng(seed)
    sounds = {"kick": kick(sr), "snare": snare(rng, sr), "hat": hat(rng, sr)}
    out = np.zeros(int(seconds * sr))
    step = 60.0 / bpm / 4
    bars = int(np.ceil(seconds / (16 * step)))
    for bar in range(bars):
        for name, hits in PATTERNS[style].items():
            for s, velocity in hits:
                _place(out, sounds[name], int(round((bar * 16 + s) * step * sr)), velocity)
    return out


def click_track(bpm: float, seconds: float, sr: int = SR, beats_per_bar: int = 4) -> np.ndarray:
    """A metronome: a 20 ms beep on every beat, the downbeat an octave higher and louder."""
    out = np.zeros(int(seconds * sr))
    n = int(0.02 * sr)
    t = np.arange(n) / sr
    env = np.exp(-t / 0.005)
    beat = 60.0 / bpm
    for i in range(int(seconds / beat) + 1):
        down = i % beats_per_bar == 0
        freq = 1760.0 if down else 880.0
        _place(out, np.sin(2 * np.pi * freq * t) * env, int(round(i * beat * sr)), 0.8 if down else 0.5)
    return out


def harmony(tonic: int, mode: str, bpm: float, seconds: float, progression: int = 0, sr: int = SR) -> np.ndarray:
    """Chords (one per bar, re-struck every two beats) and a bass on the root of each beat."""
    chords = (MAJOR_PROGRESSIONS if mode == "major" else MINOR_PROGRESSIONS)[progression]
    out = np.zeros(int(seconds * sr))
    beat = 60.0 / bpm
    # Keep the voicing in the middle register whatever the tonic: chord roots around C4..B4.
    base = 60 + tonic % 12
    if base > 66:
        base -= 12
    bar = 0
    while bar * 4 * beat < seconds:
        step, quality = chords[bar % len(chords)]
        root = base + step
        if root > 67:
            root -= 12
        for half in range(2):
            start = int(round((bar * 4 + 2 * half) * beat * sr))
            for interval in _TRIADS[quality]:
                _place(out, harmonic_tone(midi_hz(root + interval), 2 * beat, sr), start, 0.12)
        bass = midi_hz(root - 24)
        for b in range(4):
            _place(out, harmonic_tone(bass, beat, sr, partials=4, decay=0.4), int(round((bar * 4 + b) * beat * sr)),
                   0.3)
        bar += 1
    return out


def one_chord(tonic: int, mode: str, bpm: float, seconds: float, sr: int = SR) -> np.ndarray:
    """``harmony``'s first bar (its first chord) repeated for ``seconds``: a loop in which no chord changes."""
    bar = int(round(4 * 60.0 / bpm * sr))
    first = harmony(tonic, mode, bpm, 4 * 60.0 / bpm, sr=sr)[:bar]
    return np.tile(first, int(seconds * sr) // bar + 1)[: int(seconds * sr)]


def song(tonic: int, mode: str, bpm: float, seconds: float, *, style: str = "rock", progression: int = 0,
         channels: int = 2, sr: int = SR, seed: int = 0) -> Song:
    """Drums plus harmony, peak-normalised to -3 dBFS; stereo puts the hats and chords slightly apart."""
    d = drums(bpm, seconds, style, sr, seed)
    h = harmony(tonic, mode, bpm, seconds, progression, sr)
    mix = (d + h)[:, None] if channels == 1 else np.stack([d + 1.1 * h, d + 0.9 * h], axis=1)
    mix *= 0.7 / np.max(np.abs(mix))
    return Song(mix.astype(np.float32), sr, float(bpm), key_name(tonic, mode))


def mono(signal: np.ndarray, peak: float = 0.7) -> np.ndarray:
    """A 1-D signal scaled to ``peak``, as (frames, 1) float32 ready for soundfile."""
    return (signal * (peak / np.max(np.abs(signal))))[:, None].astype(np.float32)
