"""The server's renderer of the edit manifest: a streaming mixdown with flat memory.

For stem ``s`` with samples ``x_s(t)`` (mono is copied to both channels):

1. envelope ``e_s(t)``: the product of its operations' envelopes (:mod:`core.daw.envelopes`);
2. audibility ``a_s``: 1 if ``not muted and (no stem is soloed or solo)``, else 0 (mute wins over solo);
3. gain ``g_s(t) = volume * a_s * e_s(t)``;
4. pan: the Web Audio ``StereoPannerNode`` algorithm for stereo input (W3C Web Audio API, "StereoPannerNode"
   panning algorithm): ``x = pan + 1`` if ``pan <= 0`` else ``pan``; ``gL = cos(x*pi/2)``, ``gR = sin(x*pi/2)``;
   ``pan <= 0``: ``L = inL + inR*gL``, ``R = inR*gR``; else ``L = inL*gL``, ``R = inR + inL*gR``
   (``pan = 0`` passes the stem unchanged);
5. mix: ``y(t) = master.gain * sum_s pan_s(g_s(t) * x_s(t))``;
6. output: 24-bit PCM; samples beyond full scale are clipped and counted (:mod:`core.daw.wav`).

The stems are read block by block (``block_frames`` at a time) with libsndfile, so memory holds a few
blocks whatever the track's length; a block where a stem is silent (muted, trimmed, cropped away) is not
read at all. Everything is vectorised numpy in float64.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core.daw.envelopes import StemEnvelope
from core.daw.manifest import Manifest, range_frames
from core.daw.wav import FULL_SCALE, Pcm24Encoder, clipped_count, wav_header, wav_size
from core.errors import InvalidAudio, InvalidInput
from core.progress import ProgressFn

BLOCK_FRAMES = 1 << 17
OUT_CHANNELS = 2


@dataclass(frozen=True)
class StemAudio:
    """A stem file as the mixdown reads it. ``frames`` at ``sample_rate`` Hz, 1 or 2 ``channels``."""

    path: Path
    sample_rate: int
    channels: int
    frames: int


def stem_audio(path: Path) -> StemAudio:
    """Facts of a stem file that libsndfile reads (WAV, FLAC, OGG, MP3).

    Raises InvalidAudio for a file it cannot read, an empty one, or one with more than two channels.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InvalidAudio(f"{path.name} is not audio StemForge can mix") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise InvalidAudio(f"{path.name} contains no audio")
    if info.channels > 2:
        raise InvalidAudio(f"{path.name} has {info.channels} channels; stems must be mono or stereo")
    return StemAudio(Path(path), info.samplerate, info.channels, info.frames)


def pan_matrix(pan: float) -> np.ndarray | None:
    """The StereoPannerNode's 2x2 matrix ``[[L<-inL, L<-inR], [R<-inL, R<-inR]]`` (None at ``pan == 0``)."""
    if pan == 0:
        return None
    x = pan + 1.0 if pan <= 0 else pan
    g_left, g_right = math.cos(x * math.pi / 2), math.sin(x * math.pi / 2)
    if pan <= 0:
        return np.array([[1.0, g_left], [0.0, g_right]])
    return np.array([[g_left, 0.0], [g_right, 1.0]])


def audibility(manifest: Manifest) -> list[bool]:
    """Per stem: ``not muted and (no stem is soloed or solo)``."""
    soloing = any(stem.solo for stem in manifest.stems)
    return [not stem.muted and (not soloing or stem.solo) for stem in manifest.stems]


@dataclass
class Voice:
    """One audible stem of the mix: its file, constant gain (volume), envelope and pan matrix."""

    audio: StemAudio
    gain: float
    envelope: StemEnvelope
    matrix: np.ndarray | None


class _Buffers:
    """Block buffers shared by the voices of one lane, which are read one after the other."""

    def __init__(self, block_frames: int) -> None:
        self.raw = np.empty(2 * block_frames, dtype=np.float32)  # as int16 or float32, up to 2 channels
        self.planar = np.empty((2, block_frames), dtype=np.float32)
        self.envelope = np.empty(block_frames)
        self.scratch = np.empty(block_frames)
        self.envelope32 = np.empty(block_frames, dtype=np.float32)


class _VoiceReader:
    """A voice's file handle, reading into its lane's buffers (no allocation per block).

    16-bit PCM is read as int16 (a fifth of the work of decoding to float) and scaled by 2**-15 on the
    way to float32, exactly what libsndfile's own float conversion does.
    """

    def __init__(self, voice: Voice, buffers: _Buffers, scale: float = 1.0) -> None:
        self.voice = voice
        self.buffers = buffers
        self.handle = sf.SoundFile(str(voice.audio.path))
        self.as_int16 = self.handle.subtype == "PCM_16"
        self.channels = voice.audio.channels
        self.dtype = np.int16 if self.as_int16 else np.float32
        self.gain = np.float32(voice.gain * scale * (1.0 / 32768.0 if self.as_int16 else 1.0))
        m = voice.matrix
        if m is not None and self.channels == 1:  # mono feeds both inputs of the panner
            m = m.sum(axis=1, keepdims=True)
        self.matrix = None if m is None else m.astype(np.float32)

    def close(self) -> None:
        self.handle.close()

    def read(self, start: int, count: int) -> np.ndarray | None:
        """The voice's gained samples of frames ``[start, start + count)``, planar float32 ``(channels, n)``
        (n < count past the end of the file; valid until the lane's next read), or None where it is silent
        (not read at all)."""
        available = min(count, self.voice.audio.frames - start)
        if available <= 0:
            return None
        buffers = self.buffers
        envelope = self.voice.envelope.block(start, count, buffers.envelope, buffers.scratch)
        if isinstance(envelope, float) and envelope == 0.0:
            return None
        if self.handle.tell() != start:
            self.handle.seek(start)
        into = buffers.raw.view(self.dtype)[: available * self.channels].reshape(available, self.channels)
        raw = self.handle.read(available, dtype=into.dtype.name, always_2d=True, out=into)
        n = raw.shape[0]
        x = buffers.planar[: self.channels, :n]
        np.multiply(raw.T, self.gain, out=x, casting="unsafe")
        if isinstance(envelope, float):
            if envelope != 1.0:
                x *= np.float32(envelope)
        else:
            gains = buffers.envelope32[:n]
            np.copyto(gains, envelope[:n], casting="same_kind")
            x *= gains
        return x


class Mixdown:
    """A manifest bound to its stems' audio (``audios[i]`` is ``manifest.stems[i]``).

    Raises InvalidInput when the stems have different sample rates. The timeline is as long as the longest
    stem; a shorter one is silent past its end. The arithmetic is float32, like the browser's Web Audio graph
    (whose samples are float32 too); every sample is computed by the same operations whatever the block it
    falls in, so a render never depends on where blocks start.
    """

    def __init__(self, manifest: Manifest, audios: Sequence[StemAudio], *, block_frames: int = BLOCK_FRAMES) -> None:
        if len(audios) != len(manifest.stems):
            raise ValueError("one audio file per manifest stem")
        rates = {a.sample_rate for a in audios}
        if len(rates) > 1:
            raise InvalidInput("The stems have different sample rates: " + ", ".join(f"{r} Hz" for r in sorted(rates)),
                               details={"stems": "every stem must have the same sample rate"})
        self.manifest = manifest
        self.sample_rate = audios[0].sample_rate
        self.total_frames = max(a.frames for a in audios)
        self.first, self.end = range_frames(manifest, self.sample_rate, self.total_frames)
        self.block_frames = block_frames
        self.master = manifest.master.gain
        self.voices = [
            Voice(audio, stem.volume, StemEnvelope(stem.operations, self.sample_rate), pan_matrix(stem.pan))
            for stem, audio, audible in zip(manifest.stems, audios, audibility(manifest), strict=True)
            if audible and stem.volume > 0 and self.master > 0
        ]
        self.clipped = 0

    @property
    def frames(self) -> int:
        """Frames in the rendered range."""
        return self.end - self.first

    @property
    def duration_ms(self) -> float:
        return self.total_frames * 1000.0 / self.sample_rate

    def wav_size(self) -> int:
        return wav_size(self.frames, OUT_CHANNELS)

    def _blocks(self, first: int, end: int) -> Iterator[np.ndarray]:
        """Planar float32 blocks ``(2, n)`` of the mix; each is valid until the next one is asked for."""
        with _Lane(self) as lane:
            for start in range(first, end, self.block_frames):
                yield lane.mix(start, min(self.block_frames, end - start))

    def render(self, first: int | None = None, end: int | None = None) -> Iterator[np.ndarray]:
        """The mix of frames ``[first, end)`` (default: the manifest's range) as float32 blocks of shape
        ``(n, 2)``, master gain applied, not clipped."""
        first = self.first if first is None else first
        end = self.end if end is None else end
        for block in self._blocks(first, end):
            yield block.T.copy()

    def count_clipped(self, first: int, end: int) -> int:
        """Samples beyond full scale in frames ``[first, end)`` (renders that part)."""
        return sum(clipped_count(block) for block in self._blocks(first, end))

    def wav_chunks(self, progress: ProgressFn | None = None, *, threads: int | None = None) -> Iterator[bytes]:
        """The 24-bit WAV of the range: the header, then one chunk per block, in order. ``self.clipped`` counts
        the samples clipped so far.

        Blocks are mixed and encoded by ``threads`` lanes at once (default: the CPUs this process may use, at
        most ``MAX_LANES``), each with its own file handles and buffers; a sample does not depend on the block
        it falls in, so the bytes are the same for any number of lanes.
        """
        yield wav_header(self.frames, self.sample_rate, OUT_CHANNELS)
        self.clipped = 0
        starts = list(range(self.first, self.end, self.block_frames))
        lanes = max(1, min(threads or _usable_cpus(), MAX_LANES, len(starts)))
        done = 0
        with ExitStack() as stack:
            workers = [stack.enter_context(_Lane(self, encode=True)) for _ in range(lanes)]
            pool = stack.enter_context(ThreadPoolExecutor(lanes, thread_name_prefix="mixdown"))
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)

            def job(index: int) -> Future[tuple[list[bytes], int]]:
                start = starts[index]
                return pool.submit(workers[index % lanes].encoded, start, min(self.block_frames, self.end - start))

            pending = deque(job(i) for i in range(min(lanes, len(starts))))
            for index in range(len(starts)):
                pieces, clipped = pending.popleft().result()
                if index + lanes < len(starts):  # that lane is free again: its previous block was just taken
                    pending.append(job(index + lanes))
                self.clipped += clipped
                for piece in pieces:
                    done += len(piece) // (OUT_CHANNELS * 3)
                    yield piece
                if progress is not None:
                    progress(100.0 * done / max(1, self.frames), "Mixing")


MAX_LANES = 4


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Lane:
    """Everything one thread needs to mix blocks: a reader per voice, an accumulator, an encoder."""

    def __init__(self, mixdown: Mixdown, *, encode: bool = False) -> None:
        # An encoding lane mixes at 24-bit full scale (every gain times 2**23): scaling by a power of two is
        # exact in float, so these are the same numbers the encoder would make, one pass over the block fewer.
        self.scale = FULL_SCALE if encode else 1.0
        buffers = _Buffers(mixdown.block_frames)
        self.readers = [_VoiceReader(voice, buffers, self.scale) for voice in mixdown.voices]
        self.acc = np.empty((OUT_CHANNELS, mixdown.block_frames), dtype=np.float32)
        self.tmp = np.empty(mixdown.block_frames, dtype=np.float32)
        self.master = np.float32(mixdown.master)
        self.encoder = Pcm24Encoder(mixdown.block_frames) if encode else None

    def __enter__(self) -> _Lane:
        return self

    def __exit__(self, *exc: object) -> None:
        for reader in self.readers:
            reader.close()

    def mix(self, start: int, count: int) -> np.ndarray:
        """The planar block ``(2, count)`` of frames ``[start, start + count)``; valid until the next call."""
        out = self.acc[:, :count]
        out.fill(0.0)
        for reader in self.readers:
            x = reader.read(start, count)
            if x is not None:
                _add_panned(out[:, : x.shape[1]], x, reader.matrix, self.tmp[: x.shape[1]])
        if self.master != 1.0:
            out *= self.master
        return out

    def encoded(self, start: int, count: int) -> tuple[list[bytes], int]:
        """The block as 24-bit PCM bytes (in pieces) and its clipped-sample count."""
        assert self.encoder is not None
        block = self.mix(start, count)
        if block.size == 0:
            return [], 0
        high, low = block.max(), block.min()
        # Rounding reaches 2**23 (one past the largest 24-bit value) from 2**23 - 0.5 on: clip from there,
        # though only samples beyond full scale count as clipped.
        clip = high > FULL_SCALE - 1.0 or low < -FULL_SCALE
        clipped = clipped_count(block, self.scale) if high > FULL_SCALE or low < -FULL_SCALE else 0
        return self.encoder.encode_scaled(block, clip=clip), clipped


def _add_panned(out: np.ndarray, x: np.ndarray, matrix: np.ndarray | None, tmp: np.ndarray) -> None:
    """``out += matrix @ x`` for planar blocks (``x``: 1 or 2 rows), element by element (no BLAS: the same
    operations for every sample, whatever the block's length)."""
    if matrix is None:
        out += x  # a mono row is added to both channels
        return
    for row in range(OUT_CHANNELS):
        for col in range(x.shape[0]):
            coefficient = matrix[row, col]
            if coefficient == 0.0:
                continue
            if coefficient == 1.0:
                out[row] += x[col]
            else:
                np.multiply(x[col], coefficient, out=tmp)
                out[row] += tmp
