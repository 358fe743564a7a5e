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


def clipped_count(block: np.ndarray) -> int:
    """How many samples of ``block`` are beyond full scale (``|y| > 1``)."""
    if block.size == 0 or (block.max() <= 1.0 and block.min() >= -1.0):
        return 0  # the usual case, without a temporary array
    return int(np.count_nonzero(np.abs(block) > 1.0))


def pcm24_bytes(block: np.ndarray) -> bytes:
    """Frames ``(n, channels)`` of float samples (a view of planar data is fine) as interleaved 24-bit
    little-endian PCM."""
    scaled = np.multiply(block, np.float32(FULL_SCALE), dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -FULL_SCALE, FULL_SCALE - 1.0, out=scaled)
    ints = scaled.astype("<i4").reshape(-1)
    return ints.view(np.uint8).reshape(-1, 4)[:, :BYTES_PER_SAMPLE].tobytes()
