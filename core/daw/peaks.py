"""Waveform peaks for peaks.js, in audiowaveform's JSON format version 2, cached next to the audio.

One streaming pass over the file computes the finest level (256 samples per pixel) as int16 min/max
pairs; every coarser level in ``LEVELS`` is derived from it exactly, so the file is decoded once.
Samples become int16 as ``core.daw.pcm`` reads them: 16-bit PCM as stored, anything else through
``float_to_int16`` (clip(rint(x * 32767))). Files libsndfile cannot open are decoded by ffmpeg with
their own sample rate and channel count.

The cache is ``<audio dir>/.peaks/<audio name>.<size>-<mtime_ns>.npz``: a replaced audio file has a new
size or mtime, hence a new name, so stale peaks are never served and the old file is removed.

Every decoding fault is a ``BadInput`` naming the file; a bad argument is a ``ValueError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import soundfile as sf

from core.daw.pcm import ffmpeg_f32_blocks, float_to_int16, source_facts
from core.progress import BadInput

log = logging.getLogger("stemforge.daw")

BASE_SAMPLES_PER_PIXEL = 256
LEVELS = (256, 512, 1024, 2048, 4096, 8192)
CACHE_DIR = ".peaks"

ProgressCallback = Callable[[float, str], None]
_SF_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError)
_MESSAGE = "Computing the waveform"


@dataclass(frozen=True, eq=False)
class BasePeaks:
    """Peaks at 256 samples per pixel.

    ``peaks``: int16 array of shape (ceil(frames / 256), channels, 2), [..., 0] the minimum and [..., 1]
    the maximum of each pixel's samples per channel; the last pixel covers the remaining frames.
    """

    peaks: np.ndarray
    sample_rate: int  # Hz
    channels: int
    frames: int  # per channel

    def level(self, samples_per_pixel: int) -> np.ndarray:
        """int16 (ceil(frames / samples_per_pixel), channels, 2) min/max for samples_per_pixel in LEVELS.

        Exact: min of the minimums and max of the maximums over groups of samples_per_pixel / 256 base
        pixels (the last group may be partial). ValueError for a samples_per_pixel not in LEVELS.
        """
        if samples_per_pixel not in LEVELS:
            raise ValueError(f"samples_per_pixel must be one of {LEVELS}, not {samples_per_pixel!r}")
        factor = samples_per_pixel // BASE_SAMPLES_PER_PIXEL
        if factor == 1:
            return self.peaks
        starts = np.arange(0, self.peaks.shape[0], factor)
        mins = np.minimum.reduceat(self.peaks[:, :, 0], starts, axis=0)
        maxs = np.maximum.reduceat(self.peaks[:, :, 1], starts, axis=0)
        return np.stack([mins, maxs], axis=-1)

    def to_json(self, samples_per_pixel: int, bits: int = 16) -> bytes:
        """audiowaveform JSON v2 (UTF-8) at samples_per_pixel, as peaks.js reads it.

        ``{"version": 2, "channels", "sample_rate", "samples_per_pixel", "bits", "length", "data"}``; data
        holds length * channels * 2 integers: per pixel, per channel, min then max. bits=16 gives
        -32768..32767, bits=8 the 16-bit value floor-divided by 256 (-128..127). ValueError for
        samples_per_pixel not in LEVELS or bits not 8 or 16.
        """
        if bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, not {bits!r}")
        arr = self.level(samples_per_pixel)
        if bits == 8:
            arr = (arr // 256).astype(np.int8)
        doc = {
            "version": 2,
            "channels": self.channels,
            "sample_rate": self.sample_rate,
            "samples_per_pixel": samples_per_pixel,
            "bits": bits,
            "length": int(arr.shape[0]),
            "data": np.ascontiguousarray(arr).reshape(-1),
        }
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def compute_peaks(path: Path, progress: ProgressCallback | None = None, block_frames: int = 1 << 18) -> BasePeaks:
    """Decode ``path`` once, block by block, into its 256-samples-per-pixel peaks.

    Memory holds one block of ``block_frames`` frames (a positive multiple of 256) plus the peaks.
    ``progress(percent, message)`` gets 0..100 by frames decoded (against an estimate for ffmpeg
    sources). BadInput when the file is missing or cannot be decoded; ValueError for a bad block_frames.
    """
    if block_frames <= 0 or block_frames % BASE_SAMPLES_PER_PIXEL:
        raise ValueError(f"block_frames must be a positive multiple of {BASE_SAMPLES_PER_PIXEL}, not {block_frames}")
    path = Path(path)
    facts = source_facts(path)
    channels = facts.channels
    if progress:
        progress(0.0, _MESSAGE)
    parts: list[np.ndarray] = []
    carry = np.empty((0, channels), dtype=np.int16)  # frames of an unfinished pixel
    done = 0
    blocks = _int16_blocks(path, facts.sndfile_subtype, facts.sample_rate, channels, block_frames)
    try:
        for block in blocks:
            done += block.shape[0]
            if carry.shape[0]:
                block = np.concatenate([carry, block])
            whole = block.shape[0] - block.shape[0] % BASE_SAMPLES_PER_PIXEL
            if whole:
                parts.append(_pixels(block[:whole]))
            carry = block[whole:]
            if progress:
                progress(min(100.0, 100.0 * done / facts.frames), _MESSAGE)
    finally:
        blocks.close()
    if carry.shape[0]:
        parts.append(_pixels(carry))
    if done == 0:
        raise BadInput(f"{path.name} contains no audio")
    if progress:
        progress(100.0, _MESSAGE)
    return BasePeaks(np.concatenate(parts), facts.sample_rate, channels, done)


def cache_path(audio: Path) -> Path:
    """``<audio dir>/.peaks/<audio name>.<size>-<mtime_ns>.npz``; FileNotFoundError if audio is missing."""
    audio = Path(audio)
    st = audio.stat()
    return audio.parent / CACHE_DIR / f"{audio.name}.{st.st_size}-{st.st_mtime_ns}.npz"


def has_cached_peaks(audio: Path) -> bool:
    """Whether peaks of the current version of ``audio`` are cached (False if audio is missing)."""
    try:
        return cache_path(audio).is_file()
    except OSError:
        return False


def cached_peaks(audio: Path, progress: ProgressCallback | None = None) -> BasePeaks:
    """The peaks of ``audio`` from the cache, or computed, written to the cache and returned.

    Writing is atomic (temp file + os.replace), so concurrent writers never leave a torn file; the
    cache files of earlier versions of the audio are removed. A cache that cannot be written (read-only
    folder) is logged and skipped. A file changed while it was read is not cached. BadInput as compute_peaks.
    """
    audio = Path(audio)
    try:
        target = cache_path(audio)
    except OSError as exc:
        raise BadInput(f"The audio file {audio.name} does not exist") from exc
    cached = _load(target)
    if cached is not None:
        return cached
    peaks = compute_peaks(audio, progress)
    try:
        if cache_path(audio) != target:
            return peaks  # the file changed under us: these peaks may mix two versions
        _store(target, peaks)
        _remove_stale(audio, target)
    except OSError as exc:
        log.warning("Could not cache the peaks of %s: %s", audio, exc)
    return peaks


def _pixels(frames: np.ndarray) -> np.ndarray:
    """int16 (n, C) -> (ceil(n / 256), C, 2) min/max; n is a multiple of 256 except for the final block.

    The reduction runs over the last axis of a planar copy ``(C, pixels, 256)``: contiguous, so numpy's
    vectorised min/max apply (reducing the middle axis of ``(pixels, 256, C)`` is about 15 times slower).
    """
    n, channels = frames.shape
    full = n - n % BASE_SAMPLES_PER_PIXEL
    out = []
    if full:
        planar = np.ascontiguousarray(frames[:full].T).reshape(channels, -1, BASE_SAMPLES_PER_PIXEL)
        out.append(np.stack([planar.min(axis=2).T, planar.max(axis=2).T], axis=-1))
    if full < n:
        rest = frames[full:]
        out.append(np.stack([rest.min(axis=0), rest.max(axis=0)], axis=-1)[np.newaxis])
    return out[0] if len(out) == 1 else np.concatenate(out)


def _int16_blocks(path: Path, subtype: str | None, sample_rate: int, channels: int,
                  block_frames: int) -> Iterator[np.ndarray]:
    """Blocks of shape (n, channels) int16, n == block_frames except for the last."""
    if subtype is None:
        with contextlib.closing(ffmpeg_f32_blocks(path, sample_rate, channels, block_frames)) as decoded:
            for block in decoded:
                yield float_to_int16(block)
        return
    as_int16 = subtype == "PCM_16"
    try:
        with sf.SoundFile(str(path)) as fh:
            while True:
                data = fh.read(block_frames, dtype="int16" if as_int16 else "float32", always_2d=True)
                if data.shape[0] == 0:
                    return
                yield data if as_int16 else float_to_int16(data)
    except _SF_ERRORS as exc:
        raise BadInput(f"{path.name} could not be decoded: {exc}") from exc


def _load(target: Path) -> BasePeaks | None:
    """The cached peaks at ``target``, or None if absent or unreadable (it is then recomputed)."""
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as npz:
            peaks = npz["peaks"]
            sample_rate, channels, frames = (int(v) for v in npz["facts"])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        log.warning("Ignoring an unreadable peaks cache %s: %s", target, exc)
        return None
    pixels = -(-frames // BASE_SAMPLES_PER_PIXEL)
    if peaks.dtype != np.int16 or peaks.shape != (pixels, channels, 2):
        log.warning("Ignoring a peaks cache of the wrong shape: %s", target)
        return None
    return BasePeaks(peaks, sample_rate, channels, frames)


def _store(target: Path, peaks: BasePeaks) -> None:
    """Write ``target`` atomically: a unique temp file in the same folder, then os.replace."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            facts = np.array([peaks.sample_rate, peaks.channels, peaks.frames], dtype=np.int64)
            np.savez(fh, peaks=peaks.peaks, facts=facts)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_stale(audio: Path, keep: Path) -> None:
    """Remove the cache files of other versions (size/mtime) of ``audio``."""
    pattern = re.compile(re.escape(audio.name) + r"\.\d+-\d+\.npz")
    for entry in keep.parent.iterdir():
        if entry.name != keep.name and pattern.fullmatch(entry.name):
            with contextlib.suppress(OSError):
                entry.unlink()


def discard_peaks(audio: Path) -> None:
    """Remove every cached version of ``audio``'s peaks (the audio was deleted or replaced)."""
    audio = Path(audio)
    cache = audio.parent / CACHE_DIR
    if not cache.is_dir():
        return
    pattern = re.compile(re.escape(audio.name) + r"\.\d+-\d+\.npz")
    for entry in cache.iterdir():
        if pattern.fullmatch(entry.name):
            with contextlib.suppress(OSError):
                entry.unlink()
    with contextlib.suppress(OSError):
        cache.rmdir()  # only when empty
