"""Demucs over a stream: exactly apply_model's chunks, transition weights and sums, in bounded memory.

``demucs.apply.apply_model(split=True)`` cuts the whole track into segments of ``segment`` seconds
every ``(1 - overlap) * segment`` seconds, runs the model on each (padded with real neighbouring
samples, zeros only past the ends of the track), and overlap-adds the outputs with triangular
transition weights before dividing by the summed weights. It allocates the output for the whole
track: for a 60-minute mix and 4 stems that is 4.7 GB, plus the input.

Here the same grid is walked front to back. Each chunk is still computed by demucs' own
``apply_model`` (its unsplit branch: padding, ``valid_length``, ``center_trim``, callback), from a
rolling buffer that holds the input the next chunk needs. Once a chunk is added, the samples
before the next chunk's start can receive no more contributions, so they are divided by their
summed weights and handed out. Per model only one segment of output and one of weights is kept.

A bag of models runs each model on its own grid; finished samples are combined with the bag's
per-source weights in the same order of operations as apply_model's bag branch. With the same
input the output is bit-for-bit what apply_model produces for the whole track (``shifts=0``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch as th
from demucs.apply import BagOfModels, TensorChunk, apply_model


def window_chunks(segment_length: int, stride: int, length: int, window: tuple[int, int] | None = None) -> range:
    """The start samples of the chunks of apply_model's grid (every ``stride`` samples over a ``length``-sample
    track, each ``segment_length`` long) that reach into ``window`` [start, end) samples (all of them for None):
    those starting after ``start - segment_length`` and before ``end``."""
    keep_from, keep_to = window if window is not None else (0, length)
    first = max(0, (keep_from - segment_length) // stride + 1) * stride
    return range(first, min(keep_to, length), stride)


class _ModelPass:
    """One model (not a bag) walking the track on apply_model's chunk grid."""

    def __init__(self, model: Any, index: int, length: int, overlap: float, transition_power: float,
                 device: th.device, window: tuple[int, int] | None = None) -> None:
        self.model = model
        # What runs each chunk: the model, or a stand-in with its interface (core.separation.fast_cpu).
        self.runner = model
        self.index = index
        self.length = length
        self.segment_length = int(model.samplerate * model.segment)
        self.stride = int((1 - overlap) * self.segment_length)
        self.overlap = overlap
        self.transition_power = transition_power
        self.device = device
        # Only the output samples [keep_from, keep_to) are wanted: the chunks of the grid that reach into them are
        # the first one starting after keep_from - segment_length up to the last one starting before keep_to.
        self.keep_from, self.keep_to = window if window is not None else (0, length)
        grid = window_chunks(self.segment_length, self.stride, length, window)
        self.chunks = len(grid)
        self.offset = grid.start  # start of the next chunk; every sample before it has been handed out
        seg = self.segment_length
        weight = th.cat([th.arange(1, seg // 2 + 1, device=device), th.arange(seg - seg // 2, 0, -1, device=device)])
        self.weight = (weight / weight.max()) ** transition_power
        # Output not yet final, from `offset` on (accumulated where apply_model keeps its output: the input's device).
        self.out = th.zeros(1, len(model.sources), model.audio_channels, seg)
        self.sum_weight = th.zeros(seg)

    @property
    def done(self) -> bool:
        return self.offset >= min(self.length, self.keep_to)

    def _chunk_length(self) -> int:
        return min(self.length - self.offset, self.segment_length)

    def input_range(self) -> tuple[int, int]:
        """The input samples [start, end) the next chunk reads, including the padding context."""
        length = self._chunk_length()
        valid = self.model.valid_length(length) if hasattr(self.model, "valid_length") else length
        start = self.offset - (valid - length) // 2
        return max(0, start), min(self.length, start + valid)

    def step(self, buffer: th.Tensor, buffer_start: int, callback: Callable[[dict], None] | None,
             callback_arg: dict) -> th.Tensor:
        """Run the next chunk; return the output samples that are now final (shape 1, S, C, n)."""
        start, end = self.input_range()
        if start < buffer_start or end > buffer_start + buffer.shape[-1]:
            raise RuntimeError(f"input window [{buffer_start}, {buffer_start + buffer.shape[-1]}) misses "
                               f"[{start}, {end}) for the chunk at {self.offset}")
        length = self._chunk_length()
        chunk = TensorChunk(buffer, self.offset - buffer_start, self.segment_length)
        if chunk.length != length:
            raise RuntimeError(f"chunk at {self.offset} has {chunk.length} samples, expected {length}")
        chunk_out = apply_model(
            self.runner, chunk, shifts=0, split=False, overlap=self.overlap, transition_power=self.transition_power,
            device=self.device, callback=callback,
            callback_arg={**callback_arg, "model_idx_in_bag": self.index, "segment_offset": self.offset},
        )
        self.out[..., :length] += (self.weight[:length] * chunk_out).to(self.out.device)
        self.sum_weight[:length] += self.weight[:length].to(self.out.device)
        final = min(self.stride, self.length - self.offset)
        # Of the finished samples [offset, offset + final), only those inside the wanted window.
        lo = min(final, max(0, self.keep_from - self.offset))
        hi = max(lo, min(final, self.keep_to - self.offset))
        block = self.out[..., lo:hi] / self.sum_weight[lo:hi]
        # Slide the pending window to the next chunk's start.
        keep = self.segment_length - final
        self.out[..., :keep] = self.out[..., final:].clone()
        self.out[..., keep:] = 0
        self.sum_weight[:keep] = self.sum_weight[final:].clone()
        self.sum_weight[keep:] = 0
        self.offset += self.stride
        return block


class WindowedSeparation:
    """Feed normalised input blocks in, get the separated (still normalised) output out, in order."""

    def __init__(self, model: Any, length: int, *, device: th.device | str = "cpu", overlap: float = 0.25,
                 transition_power: float = 1.0, window: tuple[int, int] | None = None,
                 runners: Sequence[Any] | None = None) -> None:
        """``window`` (start, end) in samples: hand out only those output samples, computing only the chunks of the
        whole track's grid that reach into them, so they are exactly what the whole separation gives there.

        ``runners``: what to run for each model (of the bag, in order) instead of the model itself, with its
        interface (``core.separation.fast_cpu.FastCPU.runner``); ValueError if the count differs."""
        if length <= 0:
            raise ValueError("nothing to separate")
        if window is not None and not 0 <= window[0] < window[1] <= length:
            raise ValueError(f"window {window} is not inside the track's {length} samples")
        device = th.device(device)
        if isinstance(model, BagOfModels):
            subs, self.weights = list(model.models), model.weights
        else:
            subs, self.weights = [model], None
        self.sources = list(model.sources)
        self.length = length
        self.passes = [_ModelPass(m, i, length, overlap, transition_power, device, window)
                       for i, m in enumerate(subs)]
        if runners is not None:
            if len(runners) != len(subs):
                raise ValueError(f"{len(runners)} runners for {len(subs)} models")
            for p, runner in zip(self.passes, runners, strict=True):
                p.runner = runner
        # Chunks of all models together: what a progress report counts to.
        self.total_chunks = sum(p.chunks for p in self.passes)
        self.callback_arg = {"models": len(subs), "shift_idx": 0, "audio_length": length}

    def run(self, blocks: Iterable[th.Tensor],
            callback: Callable[[dict], None] | None = None) -> Iterator[th.Tensor]:
        """``blocks``: the whole input as (C, n) tensors in order. Yields (S, C, n) output blocks in order.

        ``callback`` is demucs' own: called as each chunk starts and ends with a dict holding
        ``state``, ``model_idx_in_bag``, ``segment_offset``, ``models`` and ``audio_length``; it may
        raise to stop the work, as with apply_model.
        """
        source = iter(blocks)
        buffer = th.zeros(1, 0, 0)
        buffer_start = 0
        exhausted = False
        pending: list[list[th.Tensor]] = [[] for _ in self.passes]
        with th.no_grad():
            while True:
                active = [p for p in self.passes if not p.done]
                if not active:
                    break
                current = min(active, key=lambda p: (p.offset, p.index))
                _, end = current.input_range()
                while buffer_start + buffer.shape[-1] < end:
                    if exhausted:
                        raise RuntimeError(f"the input ended at {buffer_start + buffer.shape[-1]} samples, "
                                           f"before the announced {self.length}")
                    block = next(source, None)
                    if block is None:
                        exhausted = True
                        continue
                    block = block[None]
                    buffer = block if buffer.shape[-1] == 0 else th.cat([buffer, block], dim=-1)
                    # Input before what any model still needs (before a window) is not kept.
                    needed = min(p.input_range()[0] for p in active)
                    if needed > buffer_start:
                        drop = min(needed - buffer_start, buffer.shape[-1])
                        buffer = buffer[..., drop:]
                        buffer_start += drop
                pending[current.index].append(current.step(buffer, buffer_start, callback, self.callback_arg))
                # Drop input no model needs any more.
                needed = min((p.input_range()[0] for p in self.passes if not p.done), default=self.length)
                if needed > buffer_start:
                    buffer = buffer[..., needed - buffer_start:]
                    buffer_start = needed
                combined = self._combine(pending)
                if combined is not None:
                    yield combined

    def _combine(self, pending: list[list[th.Tensor]]) -> th.Tensor | None:
        """The samples every model has finished, combined as apply_model's bag branch does."""
        ready = min(sum(b.shape[-1] for b in blocks) for blocks in pending)
        if ready == 0:
            return None
        outs = []
        for i, blocks in enumerate(pending):
            joined = blocks[0] if len(blocks) == 1 else th.cat(blocks, dim=-1)
            outs.append(joined[..., :ready])
            rest = joined[..., ready:]
            pending[i] = [rest] if rest.shape[-1] else []
        if self.weights is None:
            return outs[0][0]
        estimates: Any = 0.0
        totals = [0.0] * len(self.sources)
        for out, model_weights in zip(outs, self.weights, strict=True):
            out = out.clone()
            for k, inst_weight in enumerate(model_weights):
                out[:, k, :, :] *= inst_weight
                totals[k] += inst_weight
            estimates += out
        for k in range(estimates.shape[1]):
            estimates[:, k, :, :] /= totals[k]
        return estimates[0]
