"""Waveform peaks (core.daw.peaks): exact min/max at every level, the JSON v2 format, the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile as sf

from core.daw import peaks as peaks_mod
from core.daw.pcm import float_to_int16
from core.daw.peaks import LEVELS, BasePeaks, cache_path, cached_peaks, compute_peaks, has_cached_peaks
from core.progress import BadInput
from tests.audio import write_audio

SR = 8000
FRAMES = 3 * 1024 * 7 + 1000  # neither a multiple of 256 nor of the block size


def _signal(frames: int = FRAMES, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / SR
    cols = [0.6 * np.sin(2 * np.pi * (110 + 50 * c) * t) + 0.2 * rng.standard_normal(frames) for c in range(channels)]
    return np.clip(np.stack(cols, axis=1), -1.0, 1.0).astype(np.float32)


def _expected(samples: np.ndarray, n: int) -> np.ndarray:
    """Direct min/max per pixel of n frames: (ceil(frames / n), C, 2)."""
    out = []
    for i in range(0, samples.shape[0], n):
        chunk = samples[i : i + n]
        out.append(np.stack([chunk.min(axis=0), chunk.max(axis=0)], axis=-1))
    return np.array(out)


def _check_all_levels(result: BasePeaks, samples: np.ndarray) -> None:
    assert result.frames == samples.shape[0]
    assert result.channels == samples.shape[1]
    for n in LEVELS:
        level = result.level(n)
        assert level.dtype == np.int16
        assert level.shape == (-(-samples.shape[0] // n), samples.shape[1], 2)
        np.testing.assert_array_equal(level, _expected(samples, n))


@pytest.mark.parametrize("channels", [2, 1])
def test_pcm16_levels_match_direct_min_max(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "mix.wav"
    sf.write(path, _signal(channels=channels), SR, subtype="PCM_16")
    whole, _ = sf.read(path, dtype="int16", always_2d=True)
    calls: list[float] = []
    result = compute_peaks(path, lambda pct, msg: calls.append(pct), block_frames=1024)
    assert result.sample_rate == SR
    _check_all_levels(result, whole)
    assert calls[0] == 0.0 and calls[-1] == 100.0 and calls == sorted(calls)


def test_block_size_does_not_change_the_result(tmp_path: Path) -> None:
    path = tmp_path / "mix.wav"
    sf.write(path, _signal(), SR, subtype="PCM_16")
    small = compute_peaks(path, block_frames=256)
    big = compute_peaks(path)
    np.testing.assert_array_equal(small.peaks, big.peaks)
    with pytest.raises(ValueError):
        compute_peaks(path, block_frames=1000)


@pytest.mark.parametrize(("name", "subtype"), [("float.wav", "FLOAT"), ("deep.flac", "PCM_24")])
def test_float_and_24_bit_files_follow_the_int16_rule(tmp_path: Path, name: str, subtype: str) -> None:
    path = tmp_path / name
    sf.write(path, _signal(), SR, subtype=subtype)
    whole = float_to_int16(sf.read(path, dtype="float32", always_2d=True)[0])
    _check_all_levels(compute_peaks(path, block_frames=1024), whole)


def test_float_to_int16_rounds_and_clips() -> None:
    x = np.array([0.0, 1.0, -1.0, 1.5, -1.5, 0.5 / 32767, 1.6 / 32767, -1.6 / 32767, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(float_to_int16(x), [0, 32767, -32767, 32767, -32768, 0, 2, -2, 0])


def test_json_v2_fields(tmp_path: Path) -> None:
    path = tmp_path / "mix.wav"
    sf.write(path, _signal(), SR, subtype="PCM_16")
    result = compute_peaks(path, block_frames=1024)
    for n in (256, 1024, 8192):
        doc = orjson.loads(result.to_json(n))
        assert set(doc) == {"version", "channels", "sample_rate", "samples_per_pixel", "bits", "length", "data"}
        assert doc["version"] == 2 and doc["channels"] == 2 and doc["sample_rate"] == SR
        assert doc["samples_per_pixel"] == n and doc["bits"] == 16
        assert doc["length"] == -(-FRAMES // n)
        assert len(doc["data"]) == doc["length"] * 2 * 2
        assert all(type(v) is int for v in doc["data"])
        level = result.level(n)
        # pixel 0: ch0 min, ch0 max, ch1 min, ch1 max
        assert doc["data"][:4] == [int(level[0, 0, 0]), int(level[0, 0, 1]), int(level[0, 1, 0]), int(level[0, 1, 1])]
        assert doc["data"] == level.reshape(-1).tolist()
    eight = orjson.loads(result.to_json(512, bits=8))
    assert eight["bits"] == 8
    assert eight["data"] == [v // 256 for v in result.level(512).reshape(-1).tolist()]
    assert min(eight["data"]) >= -128 and max(eight["data"]) <= 127
    with pytest.raises(ValueError):
        result.to_json(512, bits=12)
    with pytest.raises(ValueError):
        result.level(300)


def test_m4a_through_ffmpeg(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "song.m4a", seconds=1.0)
    result = compute_peaks(path, block_frames=4096)
    assert result.sample_rate == 44100 and result.channels == 2
    assert abs(result.frames - 44100) < 2048
    assert result.peaks.shape == (-(-result.frames // 256), 2, 2)
    assert result.peaks[:, :, 1].max() > 8000 and result.peaks[:, :, 0].min() < -8000  # a 0.3 tone
    doc = orjson.loads(result.to_json(1024))
    assert doc["length"] == -(-result.frames // 1024) and len(doc["data"]) == doc["length"] * 4


def test_undecodable_file_is_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all " * 200)
    with pytest.raises(BadInput, match="junk.mp3"):
        compute_peaks(junk)
    with pytest.raises(BadInput, match="gone.wav"):
        cached_peaks(tmp_path / "gone.wav")


def test_cache_written_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mix.wav"
    sf.write(path, _signal(), SR, subtype="PCM_16")
    assert not has_cached_peaks(path)
    first = cached_peaks(path)
    target = cache_path(path)
    assert target.parent == tmp_path / ".peaks"
    assert target.name == f"mix.wav.{path.stat().st_size}-{path.stat().st_mtime_ns}.npz"
    assert has_cached_peaks(path) and target.is_file()

    def fail(*args: object, **kwargs: object) -> BasePeaks:
        raise AssertionError("recomputed")

    monkeypatch.setattr(peaks_mod, "compute_peaks", fail)
    again = cached_peaks(path)
    np.testing.assert_array_equal(again.peaks, first.peaks)
    assert (again.sample_rate, again.channels, again.frames) == (SR, 2, FRAMES)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp files left


def test_cache_replaced_when_audio_changes(tmp_path: Path) -> None:
    path = tmp_path / "mix.wav"
    other = tmp_path / "mix.wav.flac"  # a neighbour whose cache must survive
    sf.write(path, _signal(), SR, subtype="PCM_16")
    sf.write(other, _signal(1000), SR)
    cached_peaks(other)
    first = cached_peaks(path)
    old = cache_path(path)
    sf.write(path, _signal(FRAMES // 2, seed=1) * 0.5, SR, subtype="PCM_16")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a distinct mtime on any filesystem
    assert not has_cached_peaks(path)
    second = cached_peaks(path)
    assert second.frames == FRAMES // 2
    assert not np.array_equal(second.level(8192), first.level(8192)[: second.level(8192).shape[0]])
    assert not old.exists() and cache_path(path).is_file()
    assert cache_path(other).is_file()


def test_corrupt_cache_is_recomputed(tmp_path: Path) -> None:
    path = tmp_path / "mix.wav"
    sf.write(path, _signal(), SR, subtype="PCM_16")
    target = cache_path(path)
    target.parent.mkdir()
    target.write_bytes(b"garbage")
    result = cached_peaks(path)
    assert result.frames == FRAMES
    np.testing.assert_array_equal(cached_peaks(path).peaks, result.peaks)
