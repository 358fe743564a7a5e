"""The analysis service on synthesised audio whose tempo and key are known by construction
(tests/synth.py), through the real decoders (libsndfile, ffmpeg) and the real DSP (tests/test_dsp.py checks it
against librosa)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.analysis import ALLOWED, analyze, check_tempo_range, parse_features
from core.analysis.features import octave_around
from core.analysis.record import COLUMNS, to_result, to_row
from core.errors import InvalidInput
from core.progress import BadInput, JobCancelled
from tests import synth
from tests.audio import write_audio
from tests.conftest import ROOT


def _write(path: Path, audio: np.ndarray, sr: int = synth.SR) -> Path:
    sf.write(path, audio, sr, subtype="PCM_16")
    return path


def _progression_seconds(bpm: float) -> float:
    """One whole four-bar progression and a second of the next bar: the cadence home is heard."""
    return 16 * 60.0 / bpm + 1.0


def _assert_tempo(measured: float | None, bpm: float) -> None:
    assert measured is not None
    assert abs(measured / bpm - 1) <= 0.02, f"measured {measured} BPM for {bpm} BPM"


@pytest.fixture(scope="module")
def song_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stereo drums-and-chords clip in A minor at 128 BPM, reused by the shape tests."""
    song = synth.song(9, "minor", 128, _progression_seconds(128), style="rock")
    return song.write(tmp_path_factory.mktemp("analysis") / "a-minor-128.wav")


@pytest.mark.parametrize("bpm", [70, 128, 180])
def test_click_track_tempo_and_beats(tmp_path: Path, bpm: float) -> None:
    path = _write(tmp_path / "click.wav", synth.mono(synth.click_track(bpm, 10)))
    result = analyze(path, ["tempo"])
    _assert_tempo(result["tempo"], bpm)
    beats = np.asarray(result["beats"])
    period = 60.0 / bpm
    assert len(beats) >= int(10 / period) - 2
    # Every tracked beat sits on a click (to within about a frame, 23 ms).
    offsets = np.abs(beats - np.round(beats / period) * period)
    assert np.median(offsets) < 0.03, offsets


@pytest.mark.parametrize(("style", "bpm"), [("rock", 96), ("four", 124), ("sixteenths", 84), ("rock", 165)])
def test_drum_pattern_tempo(tmp_path: Path, style: str, bpm: float) -> None:
    path = _write(tmp_path / "drums.wav", synth.mono(synth.drums(bpm, 10, style, seed=bpm)))
    _assert_tempo(analyze(path, ["tempo"])["tempo"], bpm)


@pytest.mark.parametrize(
    ("tonic", "mode", "bpm", "progression", "style"),
    [
        ("C", "major", 120, 0, "rock"),  # I-IV-V-I
        ("A", "minor", 100, 0, "four"),  # i-iv-V-i
        ("F#", "major", 140, 1, "sixteenths"),  # I-vi-IV-V
        ("D#", "minor", 92, 0, "rock"),
        ("G", "minor", 132, 2, "four"),  # i-ii°-V-i
        ("A#", "major", 110, 2, "rock"),  # I-ii-V-I
    ],
)
def test_key_and_tempo_of_chord_progressions(tmp_path: Path, tonic: str, mode: str, bpm: float, progression: int,
                                             style: str) -> None:
    song = synth.song(synth.PITCH_CLASSES.index(tonic), mode, bpm, _progression_seconds(bpm), style=style,
                      progression=progression, seed=bpm)
    result = analyze(song.write(tmp_path / "song.wav"), ["tempo", "key"])
    assert result["key"] == f"{tonic} {mode}", result["key_candidates"]
    assert 0.5 < result["key_confidence"] <= 1.0
    assert result["key_candidates"][0] == {"key": result["key"], "score": result["key_confidence"]}
    _assert_tempo(result["tempo"], bpm)


def test_key_of_a_detuned_recording(tmp_path: Path) -> None:
    """A band tuned 40 cents sharp of A440 still reads in its key (the CQT follows the estimated tuning)."""
    song = synth.song(7, "major", 110, _progression_seconds(110), style="rock")
    path = tmp_path / "sharp.wav"
    sf.write(path, song.audio, int(round(song.sr * 2 ** (0.4 / 12))), subtype="PCM_16")
    assert analyze(path, ["key"])["key"] == "G major"


def test_full_result_shape(song_file: Path) -> None:
    result = analyze(song_file)
    json.dumps(result)  # plain JSON types all the way down
    assert result["features_analyzed"] == ["tempo", "key", "energy", "spectral", "mfcc", "chroma",
                                          "structure"]
    assert result["sample_rate"] == 22050
    assert result["duration"] == pytest.approx(_progression_seconds(128), abs=0.01)
    for name in ("tempo", "energy", "spectral_centroid", "spectral_rolloff", "spectral_bandwidth",
                 "zero_crossing_rate", "key_confidence", "tempo_confidence"):
        assert isinstance(result[name], float), name
    assert result["key"] == "A minor"
    assert 0.0 < result["energy"] <= 1.0
    assert 0.0 < result["zero_crossing_rate"] < 0.5
    assert 0.0 < result["spectral_centroid"] < result["spectral_rolloff"] < 11025
    assert result["spectral_bandwidth"] > 0
    assert len(result["spectral_contrast"]) == 7
    # Frame arrays: at most 2 frames a second, every row as long as the others.
    rate = result["frame_rate"]
    assert 1.0 < rate <= 2.0
    mfcc, chroma = result["features"]["mfcc"], result["features"]["chroma"]
    assert len(mfcc) == 13 and len(chroma) == 12
    frames = math.ceil(result["duration"] * rate)
    assert {len(row) for row in mfcc} == {len(row) for row in chroma} == {frames}
    assert all(0.0 <= v <= 1.0 for row in chroma for v in row)
    # The chroma rows are pitch classes from C: the tonic A is among the three strongest.
    assert 9 in np.argsort(np.asarray(chroma).mean(axis=1))[-3:]
    assert result["beats_per_bar"] == 4 and len(result["downbeats"]) >= 2
    assert isinstance(result["sections"], list) and isinstance(result["loops"], list)
    assert result["notes"] == []


def test_only_the_requested_features(song_file: Path) -> None:
    result = analyze(song_file, ["tempo"])
    assert result["features_analyzed"] == ["tempo"]
    assert {"tempo", "beats", "tempo_confidence"} <= set(result)
    assert not {"key", "energy", "spectral_centroid", "features", "frame_rate"} & set(result)
    chroma_only = analyze(song_file, "chroma")
    assert list(chroma_only["features"]) == ["chroma"] and "tempo" not in chroma_only


def test_energy_does_not_change_with_gain_but_with_material(tmp_path: Path) -> None:
    song = synth.song(2, "major", 120, 8, style="four")
    loud = analyze(song.write(tmp_path / "loud.wav"), ["energy"])["energy"]
    quiet_audio = synth.Song(song.audio * 0.1, song.sr, song.bpm, song.key)  # -20 dB
    quiet = analyze(quiet_audio.write(tmp_path / "quiet.wav", subtype="FLOAT"), ["energy"])["energy"]
    assert abs(loud - quiet) < 0.02, (loud, quiet)
    t = np.arange(8 * synth.SR) / synth.SR
    pad = analyze(_write(tmp_path / "pad.wav", synth.mono(np.sin(2 * np.pi * 220 * t))), ["energy"])["energy"]
    noise = np.random.default_rng(1).standard_normal(len(t))
    hiss = analyze(_write(tmp_path / "noise.wav", synth.mono(noise, 0.3)), ["energy"])["energy"]
    assert pad < 0.2 < loud < hiss <= 1.0, (pad, loud, hiss)


def test_silence_gives_a_clear_result(tmp_path: Path) -> None:
    path = _write(tmp_path / "silence.wav", np.zeros((5 * synth.SR, 2), dtype=np.float32))
    result = analyze(path)
    assert result["tempo"] is None and result["beats"] == []
    assert result["key"] is None and result["key_confidence"] is None
    assert result["energy"] == 0.0
    assert result["spectral_centroid"] is None
    assert len(result["features"]["chroma"]) == 12
    assert any("silent" in note for note in result["notes"])


def test_noise_has_no_key(tmp_path: Path) -> None:
    noise = np.random.default_rng(2).standard_normal(6 * synth.SR)
    result = analyze(_write(tmp_path / "noise.wav", synth.mono(noise, 0.3)), ["key"])
    assert result["key"] is None
    assert any("tonal" in note for note in result["notes"])


def test_short_clips(tmp_path: Path) -> None:
    blip = _write(tmp_path / "blip.wav", synth.mono(synth.click_track(120, 0.2)))
    with pytest.raises(BadInput, match=r"0\.20 s long"):
        analyze(blip)
    # Long enough for spectra, too short for a tempo: a result that says so.
    two = _write(tmp_path / "two.wav", synth.mono(synth.click_track(120, 2.0)))
    result = analyze(two, ["tempo", "spectral"])
    assert result["tempo"] is None and result["spectral_centroid"] > 0
    assert any("tempo" in note for note in result["notes"])


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x10\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    with pytest.raises(BadInput, match="corrupt.wav is not audio that StemForge can read"):
        analyze(corrupt)
    text = tmp_path / "notes.mp3"
    text.write_text("not an mp3 at all\n" * 50)
    with pytest.raises(BadInput, match="notes.mp3 is not audio"):
        analyze(text)
    with pytest.raises(BadInput, match="does not exist"):
        analyze(tmp_path / "nothing-here.flac")


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3", "m4a"])
def test_compressed_formats(tmp_path: Path, ext: str) -> None:
    """libsndfile decodes FLAC, Vorbis and MP3 itself; AAC in M4A goes through ffmpeg."""
    path = write_audio(tmp_path / f"tone.{ext}", seconds=3.0)
    result = analyze(path, ["spectral"])
    assert result["duration"] == pytest.approx(3.0, abs=0.1)
    assert result["spectral_centroid"] == pytest.approx(440, rel=0.1)  # the 440 Hz tone


def test_unknown_features_are_a_validation_error() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_features(["tempo", "loudness", "bpm"])
    err = info.value
    assert err.status == 422 and err.code == "validation_error"
    assert "loudness" in err.message and "bpm" in err.message
    for name in ALLOWED:
        assert name in err.message
    assert "features" in err.details
    with pytest.raises(InvalidInput):
        parse_features([3])
    assert parse_features(None) == parse_features([]) == parse_features(["all"]) == parse_features("all")
    assert parse_features(["key", "tempo", "key"]) == ("tempo", "key")
    assert parse_features("mfcc, Chroma") == ("mfcc", "chroma")


def test_progress_is_reported_and_cancellation_stops_the_work(song_file: Path) -> None:
    seen: list[tuple[float, str]] = []
    analyze(song_file, ["tempo", "key"], progress=lambda pct, msg="": seen.append((pct, msg)))
    percents = [p for p, _ in seen]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    messages = " ".join(m for _, m in seen)
    assert "decoding" in messages and "tempo" in messages and "key" in messages

    def cancel(pct: float, msg: str = "") -> None:
        if "key" in msg:
            raise JobCancelled

    with pytest.raises(JobCancelled):
        analyze(song_file, ["tempo", "key"], progress=cancel)


def test_result_round_trips_through_the_table_row(song_file: Path) -> None:
    result = analyze(song_file, ["tempo", "key", "energy", "mfcc"])
    user, track, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    row = to_row(result, user_id=user, track_id=track, job_id=job)
    assert (row.user_id, row.track_id, row.job_id, row.stem_id) == (user, track, job, None)
    assert row.tempo == result["tempo"] and row.key == "A minor" and row.energy == result["energy"]
    assert row.key_confidence == result["key_confidence"]
    assert row.spectral_centroid is None  # not requested
    assert not set(COLUMNS) & (set(row.data) - {"scalar_fields"})
    json.dumps(row.data)
    assert to_result(row) == result


def test_cli_prints_the_result_as_json(song_file: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "main.py", "analyze", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)

    done = cli(str(song_file), "--features", "tempo", "key")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["key"] == "A minor"
    _assert_tempo(result["tempo"], 128)
    wrong = cli(str(song_file), "--features", "tempo", "groove")
    assert wrong.returncode == 1 and "groove" in wrong.stderr and "Allowed: tempo, key" in wrong.stderr
    assert wrong.stdout == ""


# --- the metrical level a caller asks for (tempo_range) ---------------------------------------------------


def test_fold_into_moves_a_tempo_by_octaves_into_the_range() -> None:
    from core.analysis.tempo import fold_into

    assert fold_into(161.5, 57.1, 114.2) == pytest.approx(80.75)
    assert fold_into(40.0, 70.0, 140.0) == pytest.approx(80.0)
    assert fold_into(210.0, 50.0, 100.0) == pytest.approx(52.5)
    assert fold_into(200.0, 50.0, 100.0) == 100.0  # on the edge: inside
    assert fold_into(100.0, 70.0, 140.0) == 100.0  # inside already: unchanged
    for bad in ((0.0, 70.0, 140.0), (-5.0, 70.0, 140.0), (100.0, 0.0, 140.0), (100.0, 140.0, 70.0)):
        with pytest.raises(ValueError):
            fold_into(*bad)


def test_tempo_range_must_be_an_octave_within_30_to_300_bpm() -> None:
    assert check_tempo_range(70, 140) == (70.0, 140.0)
    assert check_tempo_range(30, 300) == (30.0, 300.0)
    for (low, high), why in (((100, 150), "octave"), ((20, 100), "within 30-300"), ((150, 320), "within 30-300"),
                             ((140, 70), "below its max"), ((float("nan"), 100), "within 30-300")):
        with pytest.raises(InvalidInput) as info:
            check_tempo_range(low, high)
        assert info.value.status == 422 and why in info.value.details["tempo_range"]


def test_half_and_double_fold_onto_the_octave_around_a_tempo() -> None:
    from core.analysis.tempo import fold_into

    for bpm in np.arange(30.1, 300.0, 0.37):
        low, high = octave_around(float(bpm))
        assert check_tempo_range(low, high) == (low, high)
        assert low < bpm < high
        assert fold_into(2 * bpm, low, high) == pytest.approx(bpm)
        assert fold_into(bpm / 2, low, high) == pytest.approx(bpm)
    assert octave_around(80.75) == (57.1, 114.2)
    assert octave_around(250.0) == (150.0, 300.0)  # moved to the limit, still holding it
    assert all(octave_around(bpm) is None for bpm in (25.0, 30.0, 300.0, 310.0))


def test_tempo_range_counts_the_beat_at_the_asked_level(tmp_path: Path) -> None:
    path = synth.song(0, "major", 150, 14.0, style="rock").write(tmp_path / "s.wav")
    plain = analyze(path, ["tempo", "structure"])
    assert plain["tempo"] == pytest.approx(150, rel=0.02) and "tempo_range" not in plain
    half = analyze(path, ["tempo", "structure"], tempo_range=(50, 100))
    assert half["tempo"] == pytest.approx(plain["tempo"] / 2, rel=0.005)
    assert half["tempo_range"] == [50.0, 100.0]
    assert any("counted at 75.1 BPM" in note for note in half["notes"]), half["notes"]
    # the beats and bars follow: every other beat of the plain grid, bars twice as long
    assert np.diff(half["beats"]).mean() == pytest.approx(2 * np.diff(plain["beats"]).mean(), rel=0.02)
    assert all(np.min(np.abs(np.asarray(plain["beats"]) - b)) < 0.03 for b in half["beats"])
    # the bars keep their bar lines: a half-time bar is two of the bars found, starting on the first
    assert half["downbeats"] == plain["downbeats"][::2][: len(half["downbeats"])]
    assert half["downbeats"][0] == plain["downbeats"][0]
    # double time: the grid found with a beat between each two, bars half as long on the same lines
    slow = synth.song(0, "major", 75, 14.0, style="rock").write(tmp_path / "slow.wav")
    found = analyze(slow, ["tempo", "structure"])
    double = analyze(slow, ["tempo", "structure"], tempo_range=(100, 200))
    assert double["tempo"] == pytest.approx(2 * found["tempo"], rel=0.005)
    assert double["beats"][::2] == pytest.approx(found["beats"], abs=0.001)
    assert double["downbeats"][::2] == pytest.approx(found["downbeats"][: len(double["downbeats"][::2])], abs=0.001)
    assert any(note.startswith("Counted in double time") for note in double["notes"]), double["notes"]
    # a range that holds the beat found changes nothing but the echo
    same = analyze(path, ["tempo"], tempo_range=(100, 200))
    assert same["tempo"] == plain["tempo"] and same["beats"] == plain["beats"] and same["notes"] == []
    with pytest.raises(InvalidInput):
        analyze(path, ["tempo"], tempo_range=(100, 150))
    key_only = analyze(path, ["key"], tempo_range=(50, 100))
    assert key_only["notes"] == ["The tempo range was not used: neither tempo nor structure was asked for"]


def test_cli_takes_a_tempo_range(song_file: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "main.py"), "analyze", str(song_file), "--features", "tempo",
                          "--tempo-range", "50", "100"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["tempo_range"] == [50.0, 100.0] and 50 <= result["tempo"] <= 100
    bad = subprocess.run([sys.executable, str(ROOT / "main.py"), "analyze", str(song_file), "--tempo-range", "90",
                          "100"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode != 0 and "octave" in bad.stderr
