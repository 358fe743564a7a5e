"""Decoding a file into the one signal every analysis feature is computed from: mono, at the
analysis sample rate.

libsndfile (through soundfile) reads WAV, FLAC, OGG/Vorbis, AIFF and MP3 itself; the file is read
in blocks, each block mixed down to mono and fed to a streaming soxr resampler, so a long stereo
file never sits in memory at its original rate and width. Anything libsndfile cannot open (M4A,
AAC, Opus in WebM, ...) goes through ffmpeg from the ``imageio-ffmpeg`` wheel, which mixes down
and resamples on its side and hands over raw float32 samples.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from core.audio_io import ffmpeg_exe
from core.progress import BadInput

_BLOCK_FRAMES = 1 << 16


def load_mono(path: Path, sr: int, max_seconds: float) -> np.ndarray:
    """The first ``max_seconds`` of ``path`` as mono float32 at ``sr`` Hz.

    Raises BadInput when the file cannot be decoded or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"The audio file {path.name} does not exist")
    try:
        y = _load_soundfile(path, sr, max_seconds)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        # Not something libsndfile reads (or a damaged stream it gave up on): let ffmpeg try.
        y = _load_ffmpeg(path, sr, max_seconds)
    if y.size == 0:
        raise BadInput(f"{path.name} contains no audio samples")
    if not np.all(np.isfinite(y)):
        raise BadInput(f"{path.name} contains invalid samples (NaN or infinity)")
    return y


def _load_soundfile(path: Path, sr: int, max_seconds: float) -> np.ndarray:
    with sf.SoundFile(str(path)) as f:
        frames_left = int(max_seconds * f.samplerate)
        stream = None if f.samplerate == sr else soxr.ResampleStream(f.samplerate, sr, 1, dtype="float32")
        parts: list[np.ndarray] = []
        while frames_left > 0:
            block = f.read(min(_BLOCK_FRAMES, frames_left), dtype="float32", always_2d=True)
            if len(block) == 0:
                break
            frames_left -= len(block)
            mono = block.mean(axis=1)
            parts.append(mono if stream is None else stream.resample_chunk(mono))
        if stream is not None:
            parts.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _load_ffmpeg(path: Path, sr: int, max_seconds: float) -> np.ndarray:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-t", str(max_seconds),
           "-vn", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BadInput(f"Decoding {path.name} took too long; the file may be damaged") from exc
    if proc.returncode != 0 or not proc.stdout:
        # ffmpeg names the file by its full path: keep only the name, server paths are nobody's business.
        reason = proc.stderr.decode(errors="replace").replace(str(path), path.name).strip().splitlines()
        detail = f" ({reason[-1]})" if reason else ""
        raise BadInput(f"{path.name} is not audio that StemForge can read{detail}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
