"""PCM windows for the browser editor (core.daw.pcm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.daw.pcm import MAX_WINDOW_FRAMES, PcmWindow, audio_facts, ffmpeg_f32_blocks, read_window
from core.progress import BadInput
from tests.audio import write_audio

SR = 44100
FRAMES = 30_000


def _signal(frames: int = FRAMES, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(frames) / SR
    cols = [0.5 * np.sin(2 * np.pi * (220 + 70 * c) * t) + 0.1 * rng.standard_normal(frames) for c in range(channels)]
    return np.clip(np.stack(cols, axis=1), -1.0, 1.0).astype(np.float32)


def _samples(window: PcmWindow) -> np.ndarray:
    dtype = "<i2" if window.sample_format == "s16" else "<f4"
    return np.frombuffer(window.data, dtype=dtype).reshape(window.frames, window.channels)


@pytest.fixture
def wav16(tmp_path: Path) -> Path:
    path = tmp_path / "stem.wav"
    sf.write(path, _signal(), SR, subtype="PCM_16")
    return path


@pytest.mark.parametrize(("start", "frames", "returned"), [(0, 4096, 4096), (12_345, 5000, 5000),
                                                           (FRAMES - 1000, 4096, 1000)])
def test_s16_window_is_the_exact_bytes(wav16: Path, start: int, frames: int, returned: int) -> None:
    whole, _ = sf.read(wav16, dtype="int16", always_2d=True)
    window = read_window(wav16, start, frames, "s16")
    assert (window.start, window.frames, window.channels) == (start, returned, 2)
    assert (window.sample_rate, window.total_frames, window.sample_format) == (SR, FRAMES, "s16")
    assert window.data == whole[start : start + frames].astype("<i2").tobytes()


@pytest.mark.parametrize(("start", "frames"), [(0, 4096), (12_345, 5000), (FRAMES - 1000, 4096)])
def test_f32_window_matches_soundfile(tmp_path: Path, start: int, frames: int) -> None:
    path = tmp_path / "stem.flac"
    sf.write(path, _signal(channels=1), SR, subtype="PCM_24")
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    window = read_window(path, start, frames, "f32")
    assert window.channels == 1 and len(window.data) == window.frames * 4
    np.testing.assert_allclose(_samples(window), whole[start : start + frames], atol=1e-7)


def test_s16_from_float_file_uses_the_rounding_rule(tmp_path: Path) -> None:
    path = tmp_path / "stem.wav"
    sf.write(path, _signal(), SR, subtype="FLOAT")
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    window = read_window(path, 100, 2000, "s16")
    expected = np.clip(np.rint(whole[100:2100] * 32767), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(_samples(window), expected)


def test_mp3_window_matches_the_decoded_whole(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "song.mp3", seconds=1.0)
    whole, sr = sf.read(path, dtype="float32", always_2d=True)
    assert audio_facts(path) == (sr, 2, whole.shape[0])
    window = read_window(path, 20_000, 4096, "f32")
    assert window.frames == 4096
    np.testing.assert_allclose(_samples(window), whole[20_000:24_096], atol=1e-3)


def test_m4a_window_matches_the_decoded_whole(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "song.m4a", seconds=2.5)
    sr, channels, total = audio_facts(path)
    assert (sr, channels) == (44100, 2) and abs(total - 110_250) < 1000
    whole = np.concatenate(list(ffmpeg_f32_blocks(path, sr, channels, 8192)))
    for start in (0, 1000, 70_001):  # the last one past the seek preroll: ffmpeg seeks, then trims
        window = read_window(path, start, 4096, "f32")
        assert window.frames == 4096 and window.total_frames == total
        np.testing.assert_allclose(_samples(window), whole[start : start + 4096], atol=1e-3)
    tail = read_window(path, whole.shape[0] - 500, 4096, "s16")
    assert abs(tail.frames - 500) <= 1
    assert len(tail.data) == tail.frames * 2 * 2


def test_refusals(wav16: Path) -> None:
    for start, frames, fmt in [(-1, 10, "s16"), (0, 0, "s16"), (FRAMES, 10, "s16"), (0, 10, "u8"),
                               (0, MAX_WINDOW_FRAMES + 1, "f32")]:
        with pytest.raises(ValueError):
            read_window(wav16, start, frames, fmt)
    read_window(wav16, 0, MAX_WINDOW_FRAMES, "f32")  # the limit itself is allowed


def test_undecodable_file_is_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(b"\x00\x01garbage" * 300)
    with pytest.raises(BadInput, match="junk.m4a"):
        read_window(junk, 0, 100, "s16")
    with pytest.raises(BadInput):
        audio_facts(tmp_path / "missing.wav")
