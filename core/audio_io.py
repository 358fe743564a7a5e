"""Reading facts about audio files.

libsndfile (through soundfile) reads WAV, FLAC, OGG and MP3 directly; anything
else (M4A, AAC, Opus in WebM, ...) is checked with ffmpeg from the
``imageio-ffmpeg`` wheel, so no system ffmpeg is needed.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from core.errors import InvalidAudio

_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"Audio:\s*(\w+).*?(\d+)\s*Hz,\s*([^,]+)")
_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "7.1": 8}
_CODEC_EXT = {"mp3": "mp3", "flac": "flac", "aac": "m4a", "alac": "m4a", "opus": "opus", "vorbis": "ogg"}


@dataclass(frozen=True)
class AudioInfo:
    duration: float  # seconds
    sample_rate: int
    channels: int
    format: str  # file extension that fits the content: wav, flac, mp3, ogg, m4a, ...


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: Path) -> AudioInfo:
    """Facts about a file, or InvalidAudio if it is not audio we can decode."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return _probe_ffmpeg(path)
    if info.frames <= 0 or info.samplerate <= 0:
        raise InvalidAudio("The file contains no audio")
    fmt = {"WAV": "wav", "WAVEX": "wav", "FLAC": "flac", "OGG": "ogg", "MPEG": "mp3", "AIFF": "aiff"}.get(
        info.format, info.format.lower()
    )
    return AudioInfo(info.frames / info.samplerate, info.samplerate, info.channels, fmt)


def _probe_ffmpeg(path: Path) -> AudioInfo:
    # Decoding a few seconds proves the stream is really decodable, not just labelled as audio.
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "info", "-i", str(path), "-t", "5", "-vn",
         "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    err = proc.stderr
    stream = _STREAM.search(err)
    duration = _DURATION.search(err)
    if proc.returncode != 0 or not stream or not duration:
        raise InvalidAudio("The file is not audio that StemForge can read")
    h, m, s = duration.groups()
    seconds = int(h) * 3600 + int(m) * 60 + float(s)
    if seconds <= 0:
        raise InvalidAudio("The file contains no audio")
    codec, rate, layout = stream.groups()
    layout = layout.strip()
    channels = _LAYOUT_CHANNELS.get(layout.split("(")[0], 2)
    return AudioInfo(seconds, int(rate), channels, _CODEC_EXT.get(codec, codec))
