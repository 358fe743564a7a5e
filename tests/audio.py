"""Small real audio files for tests, written with soundfile (libsndfile) or ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float = 2.0, sr: int = 44100, freq: float = 440.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([mono] * channels, axis=1)


def write_audio(path: Path, seconds: float = 2.0, sr: int = 44100) -> Path:
    """WAV, FLAC or OGG by libsndfile; MP3 and M4A through ffmpeg (from imageio-ffmpeg)."""
    ext = path.suffix.lower()
    data = tone(seconds, sr)
    if ext in (".wav", ".flac", ".ogg"):
        sf.write(path, data, sr)
        return path
    import imageio_ffmpeg

    wav = path.with_suffix(".src.wav")
    sf.write(wav, data, sr)
    codec = {".mp3": ["-c:a", "libmp3lame", "-b:a", "128k"], ".m4a": ["-c:a", "aac", "-b:a", "128k"]}[ext]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), *codec, str(path)],
                   check=True)
    wav.unlink()
    return path


def stored_files(folder: Path) -> list[str]:
    """The names in a track or stems folder, less the waveform-peaks cache (``.peaks/``), whose entries must
    each belong to one of those files (no stray or stale cache is left behind)."""
    names = sorted(p.name for p in folder.iterdir() if p.name != ".peaks")
    cache = folder / ".peaks"
    if cache.is_dir():
        for entry in cache.iterdir():
            assert any(entry.name.startswith(f"{name}.") and entry.suffix == ".npz" for name in names), entry
    return names
