"""Stem files: written as the separation streams out, and what a job records about each.

One open soundfile writer per stem takes blocks as they become final, so no stem is ever whole
in memory. Files are written under a temporary name and renamed when complete: a failed or
cancelled separation leaves no half-written ``vocals.wav`` behind that could pass for a result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

# format name -> (libsndfile container, subtype). PCM is clipped to [-1, 1] first: demucs' stems may
# overshoot slightly, and integer PCM must not wrap around.
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


class StemFile(NamedTuple):
    stem_type: str  # vocals, drums, bass, other, guitar, piano
    path: Path
    size: int  # bytes
    format: str  # wav, flac, mp3


def check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown stem format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


class StemWriters:
    """Open writers for every stem of one separation; use as a context manager."""

    def __init__(self, out_dir: Path, stems: list[str], samplerate: int, channels: int, fmt: str) -> None:
        self.fmt = check_format(fmt)
        self.out_dir = Path(out_dir)
        self.stems = stems
        self.samplerate = samplerate
        self.channels = channels
        self._files: list[sf.SoundFile] = []
        self._parts: list[Path] = []

    def __enter__(self) -> StemWriters:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        container, subtype = FORMATS[self.fmt]
        extra = {"compression_level": 0.0, "bitrate_mode": "CONSTANT"} if self.fmt == "mp3" else {}
        try:
            for stem in self.stems:
                part = self.out_dir / f".{stem}.{self.fmt}.part"
                self._parts.append(part)
                self._files.append(sf.SoundFile(str(part), "w", samplerate=self.samplerate, channels=self.channels,
                                                format=container, subtype=subtype, **extra))
        except BaseException:
            self.abort()
            raise
        return self

    def write(self, block: np.ndarray) -> None:
        """``block``: (stems, channels, n) float32."""
        for fh, stem in zip(self._files, block, strict=True):
            fh.write(np.clip(stem.T, -1.0, 1.0))

    def commit(self) -> list[StemFile]:
        for fh in self._files:
            fh.close()
        result = []
        for stem, part in zip(self.stems, self._parts, strict=True):
            final = self.out_dir / f"{stem}.{self.fmt}"
            os.replace(part, final)
            result.append(StemFile(stem, final, final.stat().st_size, self.fmt))
        self._files, self._parts = [], []
        return result

    def abort(self) -> None:
        for fh in self._files:
            fh.close()
        for part in self._parts:
            part.unlink(missing_ok=True)
        self._files, self._parts = [], []

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._parts:  # not committed: an error or a cancellation
            self.abort()
