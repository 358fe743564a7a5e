"""Input audio decoded front to back in blocks, at the model's rate and channel count.

libsndfile (soundfile) reads WAV, FLAC, OGG and MP3 block by block when the file already has the
model's sample rate. Anything else (another rate, M4A/AAC, Opus, video containers) is decoded and
resampled by ffmpeg (from the imageio-ffmpeg wheel) into a pipe of float32 samples. Either way
memory holds one block, never the track, so an hour-long mix costs no more than a song.

Every decoding fault is a ``BadInput``: a file that cannot be decoded now will not decode on retry.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio_io import ffmpeg_exe
from core.progress import BadInput


@dataclass(frozen=True)
class Loudness:
    """Length and the mean / standard deviation of the channel average, which demucs normalises by."""

    frames: int
    mean: float
    std: float


class AudioStream:
    def __init__(self, path: Path, samplerate: int, channels: int) -> None:
        self.path = Path(path)
        self.samplerate = samplerate
        self.channels = channels
        if not self.path.is_file():
            raise BadInput(f"The audio file {self.path.name} does not exist")
        try:
            info = sf.info(str(self.path))
            self._native = info.samplerate == samplerate and info.frames > 0
        except (sf.LibsndfileError, RuntimeError, TypeError):
            self._native = False

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Blocks of shape (channels, n), float32, n == frames except for the last one."""
        source = self._soundfile_blocks(frames) if self._native else self._ffmpeg_blocks(frames)
        total = 0
        for block in source:
            total += block.shape[1]
            yield block
        if total == 0:
            raise BadInput(f"{self.path.name} contains no audio")

    def loudness(self, frames: int = 1 << 18) -> Loudness:
        """One pass over the file: what demucs' Separator computes on the whole tensor, in float64."""
        count, mean, m2 = 0, 0.0, 0.0
        for block in self.blocks(frames):
            ref = block.mean(axis=0).astype(np.float64)  # float32 channel average, as torch's wav.mean(0)
            n = ref.shape[0]
            block_mean = float(ref.mean())
            block_m2 = float(((ref - block_mean) ** 2).sum())
            delta = block_mean - mean
            total = count + n
            mean += delta * n / total
            m2 += block_m2 + delta * delta * count * n / total
            count = total
        if count < 2:
            raise BadInput(f"{self.path.name} is too short to separate")
        return Loudness(count, mean, math.sqrt(m2 / (count - 1)))

    def _fit_channels(self, data: np.ndarray) -> np.ndarray:
        """(n, src) -> (channels, n) the way demucs.audio.convert_audio_channels does it."""
        src = data.shape[1]
        if src == self.channels:
            pass
        elif src == 1:
            data = np.repeat(data, self.channels, axis=1)
        elif src > self.channels:
            data = data[:, : self.channels]
        else:
            raise BadInput(f"{self.path.name} has {src} channels; StemForge needs mono or {self.channels}+")
        return np.ascontiguousarray(data.T)

    def _soundfile_blocks(self, frames: int) -> Iterator[np.ndarray]:
        try:
            with sf.SoundFile(str(self.path)) as fh:
                while True:
                    data = fh.read(frames, dtype="float32", always_2d=True)
                    if data.shape[0] == 0:
                        return
                    yield self._fit_channels(data)
        except sf.LibsndfileError as exc:
            raise BadInput(f"{self.path.name} could not be decoded: {exc}") from exc

    def _ffmpeg_blocks(self, frames: int) -> Iterator[np.ndarray]:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(self.path), "-map", "0:a:0",
               "-vn", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(self.channels), "-ar", str(self.samplerate),
               "pipe:1"]
        # stderr goes to a file: a corrupt stream can log more than a pipe holds while we block on stdout.
        with tempfile.TemporaryFile() as errlog:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errlog)
            frame_bytes = 4 * self.channels
            try:
                assert proc.stdout is not None
                while True:
                    raw = proc.stdout.read(frames * frame_bytes)
                    usable = len(raw) - len(raw) % frame_bytes
                    if usable:
                        yield np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, self.channels).T.copy()
                    if len(raw) < frames * frame_bytes:
                        break
                if proc.wait() != 0:
                    errlog.seek(0)
                    err = errlog.read()[-4000:].decode(errors="replace").strip()
                    detail = err.splitlines()[-1] if err else f"ffmpeg exit status {proc.returncode}"
                    raise BadInput(f"{self.path.name} is not audio StemForge can decode ({detail})")
            finally:  # also when the consumer stops early (an error, a cancelled job)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
