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

