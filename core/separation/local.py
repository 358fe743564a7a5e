"""The local separation engine: demucs used as a library, models kept warm, long input streamed.

A worker process creates one engine (``get_engine()``) and keeps up to
``separation_model_cache`` loaded models in it, so the second job on a model pays no loading. The
device is CUDA when torch sees a GPU, otherwise the CPU with every core this process may use.

``separate()`` is what a job calls: it reads the file twice in blocks (once for the loudness
statistics demucs normalises by, once to separate), runs demucs chunk by chunk through
:class:`WindowedSeparation`, and streams every stem into its own file. Progress goes 0-100 across
the chunks of all the models of a bag; the progress callback may raise ``JobCancelled`` to stop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from demucs.apply import BagOfModels

from core.progress import BadInput, ProgressFn, no_progress
from core.separation import weights
from core.separation.audio_stream import AudioStream
from core.separation.catalog import DEFAULT_MODEL, model_info
from core.separation.fast_cpu import FastCPU
from core.separation.stems import StemFile, StemWriters, check_format
from core.separation.windowed import WindowedSeparation, window_chunks
from core.settings import Settings, get_settings

log = logging.getLogger("stemforge.separation")

# Overlap and transition of demucs' own defaults (apply_model, the demucs command line).
OVERLAP = 0.25
NUDGE_SHARE = 0.15  # a default preview start moves by at most this share of the window (fewest_chunks_start)
# Where the model's chunks sit in the 0-100 range: loading and the loudness pass come before.
_CHUNKS_FROM, _CHUNKS_TO = 3.0, 99.0
# Report at most this often (and at every whole percent), so a fast GPU does not flood the job log.
_REPORT_EVERY_S = 0.25


def pick_device(requested: str = "", threads: int = 0) -> th.device:
    """CUDA when available (or asked for), else the CPU with all the cores this process may run on.

    torch's own default is the number of physical cores of the machine, which overshoots inside a
    container limited to fewer CPUs and undershoots nothing useful; the affinity mask is what we get.
    """
    device = th.device(requested) if requested else th.device("cuda" if th.cuda.is_available() else "cpu")
    if device.type == "cpu":
        cores = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        if th.get_num_threads() != cores:
            th.set_num_threads(cores)
    return device


def use_fused_attention(device: th.device) -> None:
    """On the CPU, send demucs' self-attention through ``scaled_dot_product_attention``.

    In inference, torch's ``nn.MultiheadAttention`` takes its "fast path" (native multi-head
    attention) for self-attention, which on the CPU multiplies and softmaxes with plain ``bmm``; with
    the fast path off, the same layers go through ``F.multi_head_attention_forward`` and the fused
    flash-attention kernel, as htdemucs' cross-attention layers already do. The result is the same to
    float rounding (1.7e-7 relative on an htdemucs segment) and a segment takes 7-17 % less time on 2
    cores (bench/README.md). The switch is process-wide; a worker process runs nothing else with
    attention. CUDA keeps torch's default: not measured there.
    """
    if device.type == "cpu":
        th.backends.mha.set_fastpath_enabled(False)


class _Reporter:
    """Turns demucs' per-chunk callback into the caller's 0-100, throttled.

    demucs calls back as each chunk starts and ends (with the model's index in the bag). Ends are
    counted across every model of the bag; a report goes out at each whole percent or every
    ``_REPORT_EVERY_S``, so the caller's callback (which may raise JobCancelled) runs often enough to
    stop work within a chunk, without flooding a job log when a GPU finishes chunks in milliseconds.
    """

    def __init__(self, progress: ProgressFn, label: str, total_chunks: int) -> None:
        self.progress = progress
        self.label = label
        self.total = total_chunks
        self.done = 0
        self.last_time = time.monotonic()
        self.last_pct = _CHUNKS_FROM

    def __call__(self, event: dict) -> None:
        if event.get("state") == "end":
            self.done += 1
        pct = _CHUNKS_FROM + (_CHUNKS_TO - _CHUNKS_FROM) * self.done / self.total
        now = time.monotonic()
        if self.done == self.total or int(pct) != int(self.last_pct) or now - self.last_time >= _REPORT_EVERY_S:
            self.last_pct, self.last_time = pct, now
            self.progress(pct, self.label)


class LocalEngine:
    def __init__(self, settings: Settings | None = None, *, device: str | None = None,
                 cache_size: int | None = None, fast_cpu: bool | FastCPU | None = None) -> None:
        """``fast_cpu``: run Hybrid Transformer Demucs models through ``core.separation.fast_cpu`` (OpenVINO,
        bfloat16 where the CPU has it) when the device is the CPU; ``None`` takes the setting
        ``separation_fast_cpu`` (on when the settings have none); a ``FastCPU`` is used as it is. Its artefacts
        are cached in ``<data_dir>/cache/fast_cpu``. CUDA always runs plain demucs."""
        self.settings = settings or get_settings()
        self.device = pick_device(self.settings.separation_device if device is None else device,
                                  self.settings.separation_threads)
        use_fused_attention(self.device)
        self.cache_size = max(1, cache_size if cache_size is not None else self.settings.separation_model_cache)
        self._models: OrderedDict[tuple[str, str], Any] = OrderedDict()
        # Per loaded model: what runs each model of its bag (the model itself, or its fast CPU stand-in).
        self._runners: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()
        if fast_cpu is None:
            fast_cpu = bool(getattr(self.settings, "separation_fast_cpu", True))
        if fast_cpu is True:
            fast_cpu = FastCPU(Path(self.settings.data_dir) / "cache" / "fast_cpu")
        self.fast_cpu = fast_cpu if fast_cpu and self.device.type == "cpu" else None

    @property
    def repo(self) -> Path | None:
        return Path(self.settings.demucs_repo).expanduser() if self.settings.demucs_repo else None

    def model(self, name: str) -> Any:
        """The loaded model, from the warm cache or demucs' loader (then cached, evicting the oldest)."""
        key = (name, str(self.repo or ""))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            started = time.monotonic()
            model = weights.load(name, self.repo)
            model.to(self.device)
            model.eval()
            subs = list(model.models) if isinstance(model, BagOfModels) else [model]
            self._runners[key] = [self.fast_cpu.runner(sub) for sub in subs] if self.fast_cpu else subs
            self._models[key] = model
            while len(self._models) > self.cache_size:
                evicted, _ = self._models.popitem(last=False)
                self._runners.pop(evicted, None)
            log.info("loaded model %s on %s in %.1f s", name, self.device, time.monotonic() - started)
            return model

    def runners(self, name: str) -> list[Any]:
        """What runs each model of ``name``'s bag, in order: the model, or its fast CPU stand-in (loads it)."""
        self.model(name)
        with self._lock:
            return list(self._runners[(name, str(self.repo or ""))])

    def fewest_chunks_start(self, model: str, start: float, duration: float, track_seconds: float) -> float:
        """A start within half a chunk stride (and ``NUDGE_SHARE`` of the window) of ``start`` (seconds) whose
        ``duration``-second window needs the fewest demucs chunks of the whole track's grid (the nearest such
        start; ``start`` itself on a tie).

        A window needs every chunk starting in (window start - segment, window end): for htdemucs' 7.8 s segment
        and 5.85 s stride, a 20 s window needs 4 or 5 chunks depending on where it starts, so nudging a default
        start by at most 2.9 s makes a preview up to a fifth faster."""
        net = self.model(model)
        subs = list(net.models) if isinstance(net, BagOfModels) else [net]
        rate = net.samplerate
        total = int(round(track_seconds * rate))
        grids = []
        for sub in subs:
            segment = int(sub.samplerate * sub.segment)
            grids.append((segment, int((1 - OVERLAP) * segment)))  # as _ModelPass cuts them
        latest = max(0.0, track_seconds - duration)

        def chunks(at: float) -> int:
            window = (round(at * rate), min(total, round((at + duration) * rate)))
            return sum(len(window_chunks(segment, stride, total, window)) for segment, stride in grids)

        reach = min(min(stride for _, stride in grids) / rate / 2, NUDGE_SHARE * duration)
        candidates = [c for c in np.arange(start - reach, start + reach, 0.05) if 0.0 <= c <= latest] + [start]
        best = min(candidates, key=lambda c: (chunks(c), abs(c - start)))
        return round(float(best), 3)

    def loaded(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self._models]

    def separate(self, audio: Path, out_dir: Path, model: str = DEFAULT_MODEL, progress: ProgressFn = no_progress,
                 *, fmt: str | None = None, read_frames: int = 1 << 17,
                 window: tuple[float, float] | None = None) -> list[StemFile]:
        """Separate ``audio`` into ``out_dir/<stem>.<fmt>``; returns one StemFile per stem, in model order.

        ``window`` (start, end) in seconds separates only that part (a preview): the stems hold just those samples,
        exactly as the whole track's separation has them (the same normalisation over the whole track, the chunks
        of the same grid that reach into the window). Raises BadInput for a window outside the track."""
        info = model_info(model)
        fmt = check_format(fmt or self.settings.stem_format)
        progress(0.0, f"Loading model {model}")
        net = self.model(model)
        stream = AudioStream(Path(audio), net.samplerate, net.audio_channels)
        progress(1.0, "Reading audio")
        loudness = stream.loudness()
        progress(_CHUNKS_FROM, f"Separating with {model}")
        mean = th.tensor(loudness.mean, dtype=th.float32)
        std = th.tensor(loudness.std, dtype=th.float32) + 1e-8
        span = None
        if window is not None:
            span = (max(0, round(window[0] * net.samplerate)), min(loudness.frames, round(window[1] * net.samplerate)))
            if span[0] >= span[1]:
                raise BadInput(f"The window {window[0]:g}-{window[1]:g} s is outside the track "
                               f"({loudness.frames / net.samplerate:.1f} s)")
        run = WindowedSeparation(net, loudness.frames, device=self.device, overlap=OVERLAP, window=span,
                                 runners=self.runners(model))
        reporter = _Reporter(progress, f"Separating with {model}", run.total_chunks)
        stems = list(net.sources)
        if sorted(stems) != sorted(info.stem_names):
            log.warning("model %s has sources %s, the catalogue says %s", model, stems, info.stem_names)
        inputs = ((th.from_numpy(block) - mean) / std for block in stream.blocks(read_frames))
        with StemWriters(Path(out_dir), stems, net.samplerate, net.audio_channels, fmt) as writers:
            for block in run.run(inputs, reporter):
                writers.write((block * std + mean).numpy())
            result = writers.commit()
        progress(100.0, "Done")
        return result


_engine: LocalEngine | None = None
_engine_lock = threading.Lock()


def get_engine(settings: Settings | None = None) -> LocalEngine:
    """The process-wide engine, so models stay warm from one job to the next."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = LocalEngine(settings)
        return _engine


def separate(audio: Path, out_dir: Path, model: str = DEFAULT_MODEL, progress: ProgressFn = no_progress,
             *, fmt: str | None = None) -> list[StemFile]:
    """Separate with the process-wide engine: the call a job handler makes."""
    if not Path(audio).is_file():
        raise BadInput("The track's audio file is missing")
    return get_engine().separate(audio, out_dir, model, progress, fmt=fmt)
