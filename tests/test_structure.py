"""Bars, downbeats, sections and loops on synthesised songs whose grid and form are facts of construction
(tests/structure_songs.py), and no tempo, beats or bars for audio without onsets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.analysis import analyze
from tests import synth
from tests.structure_songs import bar_song, f_measure

TOLERANCE = 0.07  # seconds


def write(tmp_path: Path, name: str, **song: object) -> tuple[Path, object]:
    made = bar_song(**song)  # type: ignore[arg-type]
    path = tmp_path / f"{name}.wav"
    sf.write(path, made.audio, made.sr, subtype="PCM_16")
    return path, made


@pytest.mark.parametrize(("bpm", "metre", "pickup", "intro"), [
    (120, 4, 0, 0.0), (96, 3, 0, 0.0), (140, 4, 1, 0.0), (100, 4, 0, 6.0), (150, 3, 2, 6.0), (85, 4, 3, 0.0)])
def test_downbeats_fall_on_the_bars(tmp_path: Path, bpm: float, metre: int, pickup: int, intro: float) -> None:
    path, song = write(tmp_path, "bars", bpm=bpm, beats_per_bar=metre, form="AB", bars_per_section=8,
                       pickup_beats=pickup, intro_seconds=intro, tonic=bpm % 12, seed=bpm)
    result = analyze(path, ["structure"])
    assert result["beats_per_bar"] == metre
    assert f_measure(result["downbeats"], song.downbeats) >= 0.9, (result["downbeats"][:6], song.downbeats[:6])
    assert min(result["downbeats"]) > intro - TOLERANCE  # no bars in the silent intro
    assert "tempo" not in result and "beats" not in result  # structure alone does not report the tempo


@pytest.mark.parametrize(("bpm", "metre"), [(120, 4), (90, 3)])
def test_sections_of_a_known_form_share_their_labels(tmp_path: Path, bpm: float, metre: int) -> None:
    path, song = write(tmp_path, "form", bpm=bpm, beats_per_bar=metre, form="ABABCB", bars_per_section=8,
                       tonic=7 if metre == 3 else 0, seed=metre)
    result = analyze(path, ["tempo", "structure"])
    beat = 60.0 / bpm
    sections = result["sections"]
    assert [s["label"] for s in sections] == ["A", "B", "A", "B", "C", "B"]
    for found, (start, _end, _letter) in zip(sections, song.sections, strict=True):
        assert abs(found["start"] - start) <= beat, (found, start)
    assert all(a["end"] == b["start"] for a, b in zip(sections, sections[1:], strict=False))
    assert all(0 < s["energy"] <= 1 for s in sections) and max(s["energy"] for s in sections) == 1.0
    assert len(sections) <= result["duration"] / 8  # at most one section per 8 s on average
    downbeats = np.asarray(result["downbeats"])
    for section in sections[1:]:  # boundaries on downbeats
        assert np.min(np.abs(downbeats - section["start"])) < 1e-3
    loops = result["loops"]
    assert loops and {loop["bars"] for loop in loops} <= {4, 8}
    for loop in loops:
        assert 0 <= loop["score"] <= 1 and loop["end"] > loop["start"]
        assert np.min(np.abs(downbeats - loop["start"])) < 1e-3
    best = max(loops, key=lambda loop: loop["score"])
    assert best["score"] > 0.9  # the material repeats exactly: a seamless loop exists
    json.dumps(result)


def _steady(kind: str, sr: int = 44100, seconds: float = 8.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    if kind == "dc":
        return np.full_like(t, 0.25)
    if kind == "tone":
        return 0.3 * np.sin(2 * np.pi * 220 * t)
    if kind == "chord":
        return sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) * np.minimum(1.0, t / 2)
    return np.zeros_like(t)


@pytest.mark.parametrize("kind", ["dc", "tone", "chord", "silence"])
def test_audio_without_onsets_has_no_tempo_beats_or_bars(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.wav"
    sf.write(path, _steady(kind), 44100, subtype="FLOAT")
    result = analyze(path)
    text = json.dumps(result)  # finite: json refuses NaN only when asked, so look for it
    assert "NaN" not in text and "Infinity" not in text
    assert result["tempo"] is None and result["beats"] == [] and result["tempo_confidence"] == 0.0
    assert result["downbeats"] == [] and result["beats_per_bar"] is None
    assert result["sections"] == [] and result["loops"] == []
    assert any("tempo" in note for note in result["notes"]), result["notes"]
    for value in (result["energy"], result["zero_crossing_rate"]):
        assert value is None or math.isfinite(value)


@pytest.mark.parametrize(("bpm", "metre", "bars", "final_hit"), [
    (120, 4, 7, False), (100, 4, 8, False), (90, 3, 6, False), (120, 4, 7, True), (96, 3, 6, True)])
def test_every_downbeat_starts_a_bar_of_music(tmp_path: Path, bpm: float, metre: int, bars: int,
                                              final_hit: bool) -> None:
    """The tracker's grid runs on past the music; a downbeat there is no bar (a 7-bar loop read "8 bars"), while
    a final chord on the one is one."""
    path, song = write(tmp_path, "end", bpm=bpm, beats_per_bar=metre, form="A", bars_per_section=bars,
                       tonic=2, seed=bars, final_hit=final_hit)
    result = analyze(path, ["structure"])
    assert result["beats_per_bar"] == metre
    assert len(result["downbeats"]) == len(song.downbeats) == bars + final_hit, (result["downbeats"], song.downbeats)
    assert f_measure(result["downbeats"], song.downbeats) == 1.0


@pytest.mark.parametrize(("bpm", "style", "chord"), [
    (120, "four", False), (124, "four", True), (128, "four", False), (140, "four", True), (126, "rock", False)])
def test_a_backbeat_is_never_the_downbeat(tmp_path: Path, bpm: float, style: str, chord: bool) -> None:
    """A drum loop whose snare or clap is on 2 and 4 (a house loop: a kick on every beat; a rock beat: kick on
    1 and 3), alone or over one held chord. Nothing in a one-bar loop tells beat 1 from beat 3, but the clap is
    heard: a downbeat on it puts every bar a beat off (this was every such house loop before the backbeat cue)."""
    seconds = 20.0
    audio = synth.drums(bpm, seconds, style, seed=bpm)
    if chord:
        audio = audio + synth.one_chord(2, "minor", bpm, seconds)[: len(audio)]
    path = tmp_path / "loop.wav"
    sf.write(path, synth.mono(audio), synth.SR, subtype="PCM_16")
    result = analyze(path, ["structure"])
    beat = 60.0 / bpm
    assert result["beats_per_bar"] == 4
    positions = {round(t / beat) % 4 for t in result["downbeats"]}
    assert positions in ({0}, {2}), (positions, result["downbeats"][:4])
    assert all(abs(t / beat - round(t / beat)) * beat <= TOLERANCE for t in result["downbeats"])
