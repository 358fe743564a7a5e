"""Unit checks for the key and tempo logic added for real music (bench/realmusic.py measures the accuracy):
``key.estimate_key_from_cqt`` and its confidence, and the detrended tempo search, on synthesised signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.analysis import analyze, service
from core.analysis import key as key_mod
from core.analysis.decode import load_mono
from tests import synth


def _cqt(path: Path) -> np.ndarray:
    return service._Signal(load_mono(path, service.SAMPLE_RATE, service.MAX_SECONDS)).cqt


@pytest.mark.parametrize(("tonic", "mode", "progression"), [(9, "minor", 0), (0, "major", 0), (4, "minor", 2)])
def test_key_from_cqt_names_the_key_with_a_confident_posterior(tmp_path: Path, tonic: int, mode: str,
                                                              progression: int) -> None:
    song = synth.song(tonic, mode, 110, 16 * 60 / 110 + 1, style="rock", progression=progression)
    estimate = key_mod.estimate_key_from_cqt(_cqt(song.write(tmp_path / "s.wav")), service.CQT_BINS_PER_OCTAVE,
                                             service.CQT_FMIN, service.FPS)
    assert estimate.key == song.key, estimate.candidates
    assert 0.5 < estimate.confidence <= 1.0
    # candidates carry the posterior: best first, summing to at most 1
    assert estimate.candidates[0] == (estimate.key, estimate.confidence)
    assert sum(s for _, s in estimate.candidates) <= 1.0 + 1e-6


def test_key_from_cqt_of_silence_and_noise_is_none(tmp_path: Path) -> None:
    silent = np.zeros((service.CQT_OCTAVES * service.CQT_BINS_PER_OCTAVE, 100))
    assert key_mod.estimate_key_from_cqt(silent, 36, service.CQT_FMIN, service.FPS).key is None
    noise = np.random.default_rng(0).standard_normal(5 * synth.SR).astype(np.float32) * 0.3
    path = tmp_path / "noise.wav"
    sf.write(path, noise, synth.SR)
    assert key_mod.estimate_key_from_cqt(_cqt(path), 36, service.CQT_FMIN, service.FPS).key is None


@pytest.mark.parametrize("name", ["dc", "tone", "pad", "noise"])
def test_no_tempo_without_onsets_or_pulse(tmp_path: Path, name: str) -> None:
    """The detrended search keeps the no-tempo rules: a steady sound or noise has no tempo."""
    t = np.arange(10 * synth.SR) / synth.SR
    signals = {
        "dc": np.full_like(t, 0.3),
        "tone": 0.5 * np.sin(2 * np.pi * 440 * t),
        "pad": sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
        * (0.6 + 0.4 * np.sin(0.2 * np.pi * t)),
        "noise": 0.3 * np.random.default_rng(1).standard_normal(len(t)),
    }
    path = tmp_path / f"{name}.wav"
    sf.write(path, signals[name].astype(np.float32), synth.SR)
    assert analyze(path, ["tempo"])["tempo"] is None



# --- the home key, a legato melody's tempo, the beat and the harmonic rhythm (issue #11) --------------------


def test_home_key_is_where_the_music_starts_and_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two bars in C, eight in its dominant G, four back in C: most of the time is G, the key is C."""
    bar = 4 * 60 / 100.0
    parts = [synth.harmony(0, "major", 100.0, 2 * bar, progression=0),  # C: I-IV
             synth.harmony(7, "major", 100.0, 8 * bar, progression=2),  # G: I-ii-V-I, twice
             synth.harmony(0, "major", 100.0, 4 * bar, progression=0)]  # C: I-IV-V-I
    y = np.concatenate(parts)
    path = tmp_path / "home.wav"
    sf.write(path, (0.7 * y / np.abs(y).max()).astype(np.float32), synth.SR)
    cqt = _cqt(path)
    found = key_mod.estimate_key_from_cqt(cqt, service.CQT_BINS_PER_OCTAVE, service.CQT_FMIN, service.FPS)
    assert found.key == "C major", found.candidates
    # the whole track's profile alone names the key the middle sits in
    monkeypatch.setattr(key_mod, "EDGE_WEIGHT", 0.0)
    alone = key_mod.estimate_key_from_cqt(cqt, service.CQT_BINS_PER_OCTAVE, service.CQT_FMIN, service.FPS)
    assert alone.key == "G major", alone.candidates


def _legato_melody(path: Path, bpm: float, attack: float) -> Path:
    """One line of overlapping notes (a bowed or blown melody alone): soft attacks, no chords, no drums."""
    sr, beat = synth.SR, 60.0 / bpm
    notes = [60, 62, 64, 65, 67, 65, 64, 62] * 4
    out = np.zeros(int(len(notes) * beat * sr) + sr)
    t = np.arange(int(1.3 * beat * sr)) / sr
    envelope = np.minimum(1.0, t / attack) * np.exp(-0.8 * t)
    for i, note in enumerate(notes):
        tone = sum(0.5**k * np.sin(2 * np.pi * synth.midi_hz(note) * (k + 1) * t) for k in range(4)) * envelope
        start = int(i * beat * sr)
        out[start: start + len(tone)] += tone[: len(out) - start]
    sf.write(path, (0.5 * out / np.abs(out).max()).astype(np.float32), sr)
    return path


def test_a_legato_melody_alone_has_a_tempo(tmp_path: Path) -> None:
    result = analyze(_legato_melody(tmp_path / "melody.wav", 96.0, attack=0.1), ["tempo", "structure"])
    assert result["tempo"] is not None and abs(result["tempo"] / 96.0 - 1) <= 0.04, result["notes"]
    assert len(result["beats"]) > 20


def test_the_beat_fits_the_harmonic_rhythm(tmp_path: Path) -> None:
    """A tempo that fits the chord changes no whole number of times is replaced by one that does; one that fits
    is kept."""
    from core.analysis import tempo as tempo_mod

    song = synth.song(2, "major", 90.0, 24.0, style="rock", progression=1)
    sig = service._Signal(load_mono(song.write(tmp_path / "s.wav"), service.SAMPLE_RATE, service.MAX_SECONDS))
    change = tempo_mod.harmonic_change(sig.chroma)
    right = tempo_mod.commensurate_tempo(tempo_mod.TempoEstimate(90.3, 0.5), sig.onset_env, change, service.FPS)
    assert right.bpm == 90.3
    odd = tempo_mod.commensurate_tempo(tempo_mod.TempoEstimate(193.0, 0.5), sig.onset_env, change, service.FPS)
    assert odd.bpm is not None and min(abs(odd.bpm / r - 1) for r in (90.0, 180.0)) <= 0.04, odd
