"""Synthesised songs with a known bar grid and form, for the structure tests and bench/analysis.py.

A song is a sequence of sections (``form="ABABCB"``), each ``bars_per_section`` bars long in 3/4 or 4/4. Each
letter has its own material: a chord progression (one chord a bar, re-struck on the beats), a register and a
drum pattern, so that the same letter is the same music and different letters differ the way a verse and a
chorus do. The truth is a fact of construction: every bar starts at ``intro + pickup * beat + k * bar``; a
pickup plays the last beats of a bar before the first downbeat; an intro of silence can come first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.synth import SR, _place, harmonic_tone, hat, kick, midi_hz, snare

# Per letter: chords (semitones above the tonic, quality), chord register shift, hats per beat, snare gain.
MATERIAL: dict[str, tuple[tuple[tuple[int, str], ...], int, int, float]] = {
    "A": (((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")), 0, 2, 0.8),
    "B": (((5, "maj"), (7, "maj"), (4, "min"), (9, "min")), 5, 4, 0.9),
    "C": (((2, "min"), (10, "maj"), (0, "maj"), (3, "maj")), -3, 1, 0.5),
    "D": (((9, "min"), (2, "min"), (7, "maj"), (4, "maj")), 2, 2, 0.7),
}
_TRIADS = {"maj": (0, 4, 7), "min": (0, 3, 7)}


@dataclass(frozen=True)
class BarSong:
    audio: np.ndarray  # (frames, 2) float32
    sr: int
    bpm: float
    beats_per_bar: int
    downbeats: list[float]  # seconds: the first beat of every bar
    sections: list[tuple[float, float, str]]  # (start, end, letter)


def _bar(out: np.ndarray, start: float, beat: float, beats_per_bar: int, letter: str, index: int, tonic: int,
         rng: np.random.Generator, sr: int, skip_beats: int = 0) -> None:
    """One bar of ``letter``'s material starting at ``start`` seconds; the first ``skip_beats`` beats are left
    out (a pickup plays only the end of a bar)."""
    chords, shift, hats_per_beat, snare_gain = MATERIAL[letter]
    step, quality = chords[index % len(chords)]
    root = 60 + (tonic + step + shift) % 12
    if root > 67:
        root -= 12
    for b in range(skip_beats, beats_per_bar):
        at = int(round((start + b * beat) * sr))
        downbeat = b == 0
        for interval in _TRIADS[quality]:
            _place(out, harmonic_tone(midi_hz(root + interval), beat, sr, decay=0.6), at, 0.13 if downbeat else 0.08)
        _place(out, harmonic_tone(midi_hz(root - 24), beat, sr, partials=4, decay=0.4), at, 0.35 if downbeat else 0.12)
        if downbeat or (beats_per_bar == 4 and b == 2):
            _place(out, kick(sr), at, 1.0 if downbeat else 0.7)
        elif b % 2 == 1 or beats_per_bar == 3:
            _place(out, snare(rng, sr), at, snare_gain * (0.6 if beats_per_bar == 3 else 1.0))
        for h in range(hats_per_beat):
            _place(out, hat(rng, sr), int(round((start + (b + h / hats_per_beat) * beat) * sr)), 0.25)


def bar_song(bpm: float, beats_per_bar: int = 4, form: str = "AAAA", bars_per_section: int = 8, *,
             pickup_beats: int = 0, intro_seconds: float = 0.0, tonic: int = 0, seed: int = 0,
             final_hit: bool = False, sr: int = SR) -> BarSong:
    """A song of ``form`` (one letter per section, ``bars_per_section`` bars each) at ``bpm``; with
    ``final_hit``, a last tonic chord and kick on the downbeat after the last bar (a downbeat of the truth),
    held for a bar."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    bar = beat * beats_per_bar
    first = intro_seconds + pickup_beats * beat
    bars = len(form) * bars_per_section
    out = np.zeros(int((first + (bars + final_hit) * bar + 1.0) * sr))
    if pickup_beats:
        _bar(out, first - bar, beat, beats_per_bar, form[0], len(MATERIAL[form[0]][0]) - 1, tonic, rng, sr,
             skip_beats=beats_per_bar - pickup_beats)
    downbeats, sections = [], []
    for s, letter in enumerate(form):
        start = first + s * bars_per_section * bar
        sections.append((start, start + bars_per_section * bar, letter))
        for k in range(bars_per_section):
            at = start + k * bar
            downbeats.append(at)
            _bar(out, at, beat, beats_per_bar, letter, k, tonic, rng, sr)
    if final_hit:
        at = first + bars * bar
        downbeats.append(at)
        for interval in _TRIADS["maj"]:
            _place(out, harmonic_tone(midi_hz(60 + tonic % 12 + interval), bar, sr, decay=0.6), int(at * sr), 0.13)
        _place(out, kick(sr), int(at * sr), 1.0)
    stereo = np.stack([out, out], axis=1)
    stereo *= 0.7 / np.max(np.abs(stereo))
    return BarSong(stereo.astype(np.float32), sr, float(bpm), beats_per_bar, downbeats, sections)


def f_measure(estimated: list[float], reference: list[float], tolerance: float = 0.07) -> float:
    """Beat-tracking F-measure: each reference time matched at most once within ``tolerance`` seconds."""
    used: set[int] = set()
    hits = 0
    for ref in reference:
        match = next((i for i, est in enumerate(estimated) if abs(est - ref) <= tolerance and i not in used), None)
        if match is not None:
            used.add(match)
            hits += 1
    if not hits:
        return 0.0
    precision, recall = hits / len(estimated), hits / len(reference)
    return 2 * precision * recall / (precision + recall)
