"""Windows of PCM samples for the browser editor, and the decoding shared with ``core.daw.peaks``.

libsndfile (soundfile) opens WAV, FLAC, OGG and MP3 and seeks in them, so a window costs only its own
frames. Anything else (M4A/AAC, Opus, video containers) is decoded by ffmpeg (imageio-ffmpeg wheel),
which seeks a little before the window (``-ss`` as an input option), cuts at the window's exact time
(``atrim``) and is stopped as soon as the window is read. ffmpeg keeps the file's own sample rate and
channel count as ``core.audio_io.probe`` reports them, so the facts returned and the samples agree.

One rule turns float samples into 16-bit integers everywhere in this package (``float_to_int16``):
``clip(rint(x * 32767), -32768, 32767)``, libsndfile's own float-to-short scaling plus clipping (NaN
becomes 0). It applies to every source that is not 16-bit PCM; 16-bit PCM is read as the integers stored.

Every decoding fault is a ``BadInput`` naming the file; a bad request (window out of range, unknown
sample format) is a ``ValueError``.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio_io import ffmpeg_exe, probe
from core.errors import InvalidAudio
from core.progress import BadInput

MAX_WINDOW_FRAMES = 1 << 20
SAMPLE_FORMATS = ("s16", "f32")

_SF_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError)
_SEEK_PREROLL = 1.0  # seconds decoded before a window's start and thrown away (ffmpeg sources)


@dataclass(frozen=True)
class SourceFacts:
    """What a file holds and who decodes it.

    ``sndfile_subtype`` is libsndfile's subtype ("PCM_16", "FLOAT", "MPEG_LAYER_III", ...) when
    libsndfile reads the file, or None when ffmpeg decodes it. ``exact_frames`` is False for ffmpeg
    sources, whose length is round(duration * sample_rate) from a duration printed to 10 ms.
    """

    sample_rate: int  # Hz
    channels: int
    frames: int  # per channel
    sndfile_subtype: str | None
    exact_frames: bool


@dataclass(frozen=True)
class PcmWindow:
    """``frames`` interleaved frames from frame ``start``: ``len(data) == frames * channels * (2 or 4)``.

    ``sample_format`` "s16" is int16 little-endian, "f32" float32 little-endian (-1.0..1.0 nominal).
    """

    data: bytes
    start: int  # first frame, 0-based
    frames: int  # frames in data: fewer than asked near the end of the file
    channels: int
    sample_rate: int  # Hz
    total_frames: int  # frames in the file (an estimate when ffmpeg decodes it)
    sample_format: str


def source_facts(path: Path) -> SourceFacts:
    """Sample rate, channels, length and decoder of ``path``; BadInput if it is missing or not audio."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"The audio file {path.name} does not exist")
    try:
        info = sf.info(str(path))
    except _SF_ERRORS:
        info = None
    if info is not None:
        if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
            raise BadInput(f"{path.name} contains no audio")
        return SourceFacts(info.samplerate, info.channels, info.frames, info.subtype, True)
    try:
        meta = probe(path)
    except InvalidAudio as exc:
        raise BadInput(f"{path.name} is not audio StemForge can decode ({exc})") from exc
    frames = round(meta.duration * meta.sample_rate)
    if frames <= 0:
        raise BadInput(f"{path.name} contains no audio")
    return SourceFacts(meta.sample_rate, meta.channels, frames, None, False)


def audio_facts(path: Path) -> tuple[int, int, int]:
    """(sample_rate Hz, channels, total_frames) of ``path``; BadInput if it is missing or not audio.

    Fast: libsndfile's header, else ``core.audio_io.probe`` with frames = round(duration * sample_rate).
    """
    facts = source_facts(path)
    return facts.sample_rate, facts.channels, facts.frames


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """float samples (any shape) -> int16 of the same shape: clip(rint(x * 32767)), NaN -> 0."""
    scaled = np.asarray(x, dtype=np.float32) * np.float32(32767.0)
    np.rint(scaled, out=scaled)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    return scaled.astype(np.int16)


def ffmpeg_f32_blocks(path: Path, sample_rate: int, channels: int, block_frames: int,
                      start_frame: int = 0) -> Iterator[np.ndarray]:
    """Decode ``path`` with ffmpeg into blocks of shape (n, channels) float32, n == block_frames but the last.

    ``start_frame`` > 0 starts the output at that frame: ffmpeg seeks to ``_SEEK_PREROLL`` seconds before
    it (its seek lands up to a packet late in MP4, and codecs need a few packets to settle) and the
    ``atrim`` filter cuts at the exact time. Sample-exact where the container keeps per-sample timestamps
    (MP4/M4A, MP3); Matroska/WebM timestamps are in milliseconds, so there the start may be off by up to
    1 ms. A decoding fault raises BadInput before the final short block is yielded. Closing the generator
    early (``close()``, garbage collection) kills ffmpeg.
    """
    path = Path(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error"]
    trim: list[str] = []
    if start_frame > 0:
        target = start_frame / sample_rate
        # No "-ss 0": this ffmpeg then drops the first MP4 packet. Seek and trim times are in microseconds.
        seek = round(max(0.0, target - _SEEK_PREROLL), 6)
        if seek > 0:
            cmd += ["-ss", f"{seek:.6f}"]
        trim = ["-af", f"atrim=start={target - seek:.6f}"]
    cmd += ["-i", str(path), "-map", "0:a:0", "-vn", *trim, "-f", "f32le", "-acodec", "pcm_f32le",
            "-ac", str(channels), "-ar", str(sample_rate), "pipe:1"]
    frame_bytes = 4 * channels
    want = block_frames * frame_bytes
    # stderr goes to a file: a corrupt stream can log more than a pipe holds while we block on stdout.
    with tempfile.TemporaryFile() as errlog:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errlog)
        try:
            assert proc.stdout is not None
            while True:
                raw = proc.stdout.read(want)
                full = len(raw) == want
                if not full and proc.wait() != 0:
                    errlog.seek(0)
                    err = errlog.read()[-4000:].decode(errors="replace").strip()
                    detail = err.splitlines()[-1] if err else f"ffmpeg exit status {proc.returncode}"
                    raise BadInput(f"{path.name} is not audio StemForge can decode ({detail})")
                usable = len(raw) - len(raw) % frame_bytes
                if usable:
                    yield np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, channels)
                if not full:
                    return
        finally:  # also when the consumer stops early (window read, an error, a cancelled job)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def read_window(path: Path, start: int, frames: int, sample_format: str) -> PcmWindow:
    """Up to ``frames`` frames of ``path`` from frame ``start``, interleaved, in ``sample_format``.

    ``sample_format``: "s16" (int16 LE; 16-bit PCM files give their stored integers, others follow
    ``float_to_int16``) or "f32" (float32 LE). ValueError for start < 0, frames < 1 or above
    MAX_WINDOW_FRAMES, start >= total_frames, or an unknown sample_format; BadInput for a file that
    cannot be decoded. For ffmpeg sources total_frames is an estimate, so a window just before it may
    come back with 0 frames.
    """
    if sample_format not in SAMPLE_FORMATS:
        raise ValueError(f"Unknown sample format {sample_format!r}; use one of {', '.join(SAMPLE_FORMATS)}")
    if start < 0:
        raise ValueError(f"The window start must be 0 or more, not {start}")
    if frames < 1:
        raise ValueError(f"A window must hold at least 1 frame, not {frames}")
    if frames > MAX_WINDOW_FRAMES:
        raise ValueError(f"A window holds at most {MAX_WINDOW_FRAMES} frames, not {frames}")
    path = Path(path)
    facts = source_facts(path)
    if start >= facts.frames:
        raise ValueError(f"The window start {start} is past the end of {path.name} ({facts.frames} frames)")
    if facts.sndfile_subtype is not None:
        samples = _sndfile_window(path, start, frames, sample_format == "s16" and facts.sndfile_subtype == "PCM_16")
    else:
        samples = _ffmpeg_window(path, facts, start, frames)
    if sample_format == "s16" and samples.dtype != np.int16:
        samples = float_to_int16(samples)
    dtype = "<i2" if sample_format == "s16" else "<f4"
    data = np.ascontiguousarray(samples, dtype=dtype).tobytes()
    return PcmWindow(data, start, samples.shape[0], facts.channels, facts.sample_rate, facts.frames, sample_format)


def _sndfile_window(path: Path, start: int, frames: int, int16: bool) -> np.ndarray:
    """(n, channels) int16 (``int16``) or float32, n <= frames."""
    try:
        with sf.SoundFile(str(path)) as fh:
            fh.seek(start)
            return fh.read(frames, dtype="int16" if int16 else "float32", always_2d=True)
    except _SF_ERRORS as exc:
        raise BadInput(f"{path.name} could not be decoded: {exc}") from exc


def _ffmpeg_window(path: Path, facts: SourceFacts, start: int, frames: int) -> np.ndarray:
    """(n, channels) float32, n <= frames, decoded from start / sample_rate seconds."""
    blocks = ffmpeg_f32_blocks(path, facts.sample_rate, facts.channels, frames, start)
    try:
        return next(blocks, np.empty((0, facts.channels), dtype=np.float32))
    finally:
        blocks.close()
