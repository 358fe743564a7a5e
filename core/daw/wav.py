"""24-bit PCM WAV written as a stream: the header first (its sizes follow from the frame count), then
blocks of samples as they are rendered.

Float samples map to integers as ``round(y * 2**23)`` (round half to even), clipped to
``[-2**23, 2**23 - 1]``; a sample whose magnitude is above 1.0 (beyond full scale) counts as clipped.
"""

from __future__ import annotations

import struct

import numpy as np

BYTES_PER_SAMPLE = 3
FULL_SCALE = float(1 << 23)
HEADER_BYTES = 44
# The RIFF size field is 32 bits: the largest data chunk a plain WAV can describe.
MAX_DATA_BYTES = (1 << 32) - 1 - 36
# Frames per bytes object handed out (6 bytes a frame: just under 64 KiB).
CHUNK_FRAMES = 10922


def data_bytes(frames: int, channels: int = 2) -> int:
    return frames * channels * BYTES_PER_SAMPLE


def wav_size(frames: int, channels: int = 2) -> int:
    """The whole file's size in bytes."""
    return HEADER_BYTES + data_bytes(frames, channels)


def wav_header(frames: int, sample_rate: int, channels: int = 2) -> bytes:
    """The 44-byte RIFF/WAVE header of a 24-bit PCM file of ``frames`` frames.

    Raises ValueError when the data would not fit a 32-bit RIFF size (about 6.7 hours of stereo at 44.1 kHz).
    """
    size = data_bytes(frames, channels)
    if size > MAX_DATA_BYTES:
        raise ValueError("the range is too long for a WAV file (4 GiB)")
    block_align = channels * BYTES_PER_SAMPLE
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align,
                                    block_align, 8 * BYTES_PER_SAMPLE)
            + b"data" + struct.pack("<I", size))


def clipped_count(block: np.ndarray, full_scale: float = 1.0) -> int:
    """How many samples of ``block`` are beyond full scale (``|y| > full_scale``; 1.0 for float samples)."""
    if block.size == 0 or (block.max() <= full_scale and block.min() >= -full_scale):
        return 0  # the usual case, without a temporary array
    return int(np.count_nonzero(np.abs(block) > full_scale))


class Pcm24Encoder:
    """Planar float blocks ``(2, n)`` at 24-bit full scale to interleaved 24-bit little-endian PCM bytes, with
    buffers reused from block to block. Each sample is cut to its 3 low bytes by copying a 3-byte field of its int32 (a
    structured view), the fastest packing numpy offers (about 2.5 times the plain byte-slicing)."""

    _LOW3 = np.dtype({"names": ["b"], "formats": ["V3"], "offsets": [0], "itemsize": 4})

    def __init__(self, block_frames: int) -> None:
        self.ints = np.empty((2, block_frames), dtype="<i4")
        self.packed = np.empty(block_frames, dtype=np.dtype([("left", "V3"), ("right", "V3")]))

    def encode_scaled(self, scaled: np.ndarray, *, clip: bool) -> list[bytes]:
        """``scaled``: float samples at 24-bit full scale (2**23), rounded in place; ``clip=False`` when the
        caller knows none is beyond full scale. The bytes come in pieces of at most ``CHUNK_FRAMES`` frames
        (just under 64 KiB: a size the response stream and a file write take in one go)."""
        n = scaled.shape[1]
        np.rint(scaled, out=scaled)
        if clip:
            np.clip(scaled, -FULL_SCALE, FULL_SCALE - 1.0, out=scaled)
        ints = self.ints[:, :n]
        np.copyto(ints, scaled, casting="unsafe")
        packed = self.packed[:n]
        packed["left"] = ints[0].view(self._LOW3)["b"]
        packed["right"] = ints[1].view(self._LOW3)["b"]
        return [packed[i:i + CHUNK_FRAMES].tobytes() for i in range(0, n, CHUNK_FRAMES)]
