"""The real-music bench's own rules (bench/realmusic.py, bench/analysis.py): the truth its key and tempo
figures are measured against. What needs no score reader is checked here (music21 and FluidSynth are bench
tools, installed by bench/scripts/realmusic_deps.sh, not by the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import realmusic  # noqa: E402

A, C, C_SHARP, E, E_FLAT, G = 45, 60, 61, 64, 63, 55  # MIDI pitches


@pytest.mark.parametrize(("signature", "quarter_bpm", "beat_bpm"), [
    ("4/4", 100.0, 100.0), ("3/4", 90.0, 90.0), ("2/4", 120.0, 120.0),
    ("2/2", 140.0, 70.0), ("3/2", 120.0, 60.0),  # the half note
    ("3/8", 60.0, 120.0),  # the eighth
    ("6/8", 120.0, 80.0), ("9/8", 150.0, 100.0), ("12/8", 90.0, 60.0),  # the dotted quarter
    ("6/4", 150.0, 50.0),  # the dotted half
])
def test_notated_beat_rate(signature: str, quarter_bpm: float, beat_bpm: float) -> None:
    from analysis import notated_beat_rate

    assert notated_beat_rate(quarter_bpm, signature) == pytest.approx(beat_bpm)


def test_mode_from_the_signature_and_the_final_bass() -> None:
    c_major = 0  # no sharps or flats: C major or A minor
    assert realmusic._mode_of([A, C, E], 9, c_major) == "minor"
    assert realmusic._mode_of([C - 12, E, G + 12], 0, c_major) == "major"
    # a minor piece may end on a Picardy third ...
    assert realmusic._mode_of([A, C_SHARP, E], 9, c_major, strict=False) == "minor"
    # ... but a cut inside a piece must not end on the other mode's third
    assert realmusic._mode_of([A, C_SHARP, E], 9, c_major, strict=True) is None
    assert realmusic._mode_of([C - 12, E_FLAT, G + 12], 0, c_major, strict=True) is None
    # the bass decides: C in the bass with A above is not "A minor"; D is neither candidate
    assert realmusic._mode_of([C - 12, A + 12, E], 9, c_major) is None
    assert realmusic._mode_of([50, 57, 62], 2, c_major) is None
    assert realmusic._mode_of([], 9, c_major) is None


def test_sonorities() -> None:
    notes = [(0.0, 2.0, 48, 80, 1), (0.0, 1.0, 64, 80, 0), (1.0, 1.0, 65, 80, 0), (2.0, 2.0, 43, 80, 1),
             (2.0, 2.0, 67, 80, 0)]
    assert sorted(realmusic._sonority_at(notes, 0.5)) == [48, 64]
    assert sorted(realmusic._sonority_at(notes, 1.0)) == [48, 65]  # a note ends where the next begins
    assert sorted(realmusic._last_sonority(notes, 4.0)) == [43, 67]
    assert sorted(realmusic._last_sonority(notes, 2.0)) == [48, 65]  # the last onset before the cut


def _read_midi(data: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    """(ticks per quarter, microseconds per quarter, [(absolute tick, event bytes)]) of a format-0 file."""
    assert data[:4] == b"MThd" and int.from_bytes(data[8:10], "big") == 0
    division = int.from_bytes(data[12:14], "big")
    assert data[14:18] == b"MTrk"
    track, pos, tick, tempo, events = data[22:], 0, 0, 0, []
    while pos < len(track):
        delta = 0
        while True:
            byte = track[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        tick += delta
        if track[pos] == 0xFF:
            kind, length = track[pos + 1], track[pos + 2]
            if kind == 0x51:
                tempo = int.from_bytes(track[pos + 3: pos + 6], "big")
            pos += 3 + length
        else:
            size = 2 if track[pos] & 0xF0 == 0xC0 else 3
            events.append((tick, track[pos: pos + size]))
            pos += size
    return division, tempo, events


def test_midi_file_holds_the_tempo_programs_and_notes(tmp_path: Path) -> None:
    notes = [(0.0, 1.0, 60, 80, 0), (1.0, 1.0, 62, 90, 0), (0.0, 2.0, 48, 70, 1), (2.0, 4.0, 64, 80, 0)]
    path = tmp_path / "x.mid"
    realmusic.write_midi(path, notes, 3.0, 96.0, [40, 42], np.random.default_rng(0))
    division, tempo, events = _read_midi(path.read_bytes())
    assert division == realmusic.TICKS
    assert tempo == round(60_000_000 / 96.0)
    assert [e for _, e in events if e[0] & 0xF0 == 0xC0] == [bytes([0xC0, 40]), bytes([0xC1, 42])]
    ons = [(t, e[1]) for t, e in events if e[0] & 0xF0 == 0x90]
    offs = [(t, e[1]) for t, e in events if e[0] & 0xF0 == 0x80]
    assert sorted(ons) == [(0, 48), (0, 60), (480, 62), (960, 64)]
    # every note ends before the cut (the last one is cut at beat 3) and before the next note on its pitch
    assert dict((p, t) for t, p in offs) == {60: 479, 62: 959, 48: 959, 64: 1439}
    # velocities stay in 30-120 (the score's, jittered), events in time order
    assert all(30 <= e[2] <= 120 for _, e in events if e[0] & 0xF0 == 0x90)
    ticks = [t for t, _ in events]
    assert ticks == sorted(ticks)


def test_bar_starts_from_the_score_bar_lines() -> None:
    """Bars start at the measures' offsets (quarter notes at the MIDI tempo); a short first measure is a pickup,
    not a bar; bars from the cut on are not in the excerpt."""
    four_four = [(0.0, 4.0, 4.0), (4.0, 4.0, 4.0), (8.0, 4.0, 4.0), (12.0, 4.0, 4.0)]
    assert realmusic.bar_starts(four_four, 120.0, 16.0) == [0.0, 2.0, 4.0, 6.0]
    assert realmusic.bar_starts(four_four, 120.0, 8.0) == [0.0, 2.0]  # cut at the end of bar 2
    pickup = [(0.0, 1.0, 4.0), (1.0, 4.0, 4.0), (5.0, 4.0, 4.0), (9.0, 3.0, 4.0)]  # a 1-beat anacrusis
    assert realmusic.bar_starts(pickup, 60.0, 12.0) == [1.0, 5.0, 9.0]
    three_eight = [(0.0, 1.5, 1.5), (1.5, 1.5, 1.5), (3.0, 1.5, 1.5)]
    assert realmusic.bar_starts(three_eight, 90.0, 4.5) == [0.0, 1.0, 2.0]
    # a shortened bar inside the piece (a chorale's phrase end) is still a bar
    chorale = [(0.0, 4.0, 4.0), (4.0, 3.0, 4.0), (7.0, 4.0, 4.0)]
    assert realmusic.bar_starts(chorale, 60.0, 11.0) == [0.0, 4.0, 7.0]
