"""Hybrid Transformer Demucs on the CPU, faster: the same network run by OpenVINO, in bfloat16 where the CPU has it.

What runs where, for one chunk (``HTDemucs.forward`` of demucs 4.x, split in three):

1. torch, float32, demucs' own code: the STFT (``_spec``), the complex-as-channels magnitude, and the two
   normalisations (spectrogram and waveform by their mean and standard deviation).
2. OpenVINO: :class:`NetworkCore`, everything between the normalised inputs and the un-normalised outputs
   (both encoders, the cross-transformer, both decoders). It is exported once per checkpoint to ONNX
   (torch's TorchScript exporter, opset 17) and kept as OpenVINO IR in a cache folder; every worker then
   compiles it for its CPU. The inference precision is ``bf16`` where the CPU has native bfloat16
   (:func:`native_bf16`: AVX512-BF16 or AMX-BF16), ``f32`` elsewhere.
3. torch, float32, demucs' own code again: the un-normalisation, the mask (``_mask``), the iSTFT
   (``_ispec``) and the sum of the two branches.

Speed and accuracy (bench/README.md, ``bench/separate.py``; htdemucs architecture with random weights, 2
cores of a Sapphire Rapids Xeon): a 30 s clip in ~0.49 of the time of demucs' ``apply_model`` in float32,
each stem within -48 to -54 dB of float32 demucs (bf16; ``f32``: -118 dB or better, ~0.75 of the time).

The quality bound is :data:`BOUND_DB`: every stem's difference from float32 demucs at most -40 dB relative
to that stem, ``10 * log10(sum((y - ref)**2) / sum(ref**2))``. Because that depends on the weights (random
weights with demucs' tiny LayerScale initialisation barely exercise the transformer and the residual
branches; scaled up to 1.0 they reach only about -18 dB in bfloat16, bench/README.md), every prepared checkpoint
is *checked* when its artefact is built: a fixed probe (tones, a pulse and noise, one segment) goes through
float32 demucs and through each precision, timed. A precision is used only when every stem is within
:data:`ACCEPT_DB` (the bound with a margin) and its forward takes at most :data:`SPEED_MARGIN` of demucs'
own (a small model gains nothing: the STFTs in torch dominate it). The measurements are stored with the
artefact and taken again on another CPU or thread count.

Falls back to plain demucs (returns the model itself) when OpenVINO or onnx is not installed, the model is
not an ``HTDemucs`` with a training segment (a bag is prepared model by model; ``HDemucs``, demucs v2/v3
models are not accelerated), the export or compilation fails, or no precision passes the check. A chunk
of another shape than the exported one (batch > 1, a model used without its training segment) runs
through the model itself.

The cache: ``<cache_dir>/<key>/`` with ``network.xml``/``network.bin`` (OpenVINO IR; weights as float16
when that is lossless, as in demucs' published checkpoints) and ``meta.json``. ``key`` hashes the class,
constructor arguments and every weight (so two names for one checkpoint share it) with the versions of
torch, demucs and OpenVINO and :data:`FORMAT`. Building happens under an exclusive ``flock`` on
``<key>.lock`` in a private folder that is renamed into place, so two workers that start at once build it
once and never read a half-written artefact.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import platform
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch as th
from torch import nn

log = logging.getLogger("stemforge.separation")

# Every stem's error against float32 demucs, relative to the stem (dB): the contract.
BOUND_DB = -40.0
# What the build-time check demands on its probe: the bound with a 3 dB margin (half the error energy), as real
# music and real weights differ from the probe.
ACCEPT_DB = -43.0
# The fast path is taken only where the check's forward takes at most this share of float32 demucs' (a margin, so
# that a model that gains nothing does not flip between the two from one build to the next).
SPEED_MARGIN = 0.9
# Bump when the exported graph or the cache layout changes: part of the cache key.
FORMAT = 1
_ONNX_OPSET = 17


def available() -> bool:
    """Whether the fast path's runtime can be used here: OpenVINO (inference) and onnx (torch's exporter)."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "onnx"))


def supported(model: Any) -> str | None:
    """``None`` when ``model`` can take the fast path, else why not (a short phrase for the log)."""
    try:
        from demucs.htdemucs import HTDemucs
    except ImportError:  # pragma: no cover - demucs is a dependency
        return "demucs is not installed"
    if not isinstance(model, HTDemucs):
        return f"{type(model).__name__} is not a Hybrid Transformer Demucs"
    if type(model).forward is not HTDemucs.forward:
        return f"{type(model).__name__} has its own forward"
    if not model.use_train_segment:
        return "the model runs without its training segment"
    if model.training:
        return "the model is in training mode"
    return None


def native_bf16() -> bool:
    """Whether bfloat16 runs natively here: OpenVINO's CPU plugin offers it and the CPU has AVX512-BF16 or AMX-BF16.

    OpenVINO may offer ``BF16`` on AVX-512 CPUs without those instructions (emulated, slower than f32), so on Linux
    the CPU flags of ``/proc/cpuinfo`` decide too; elsewhere OpenVINO's word is taken.
    """
    if "BF16" not in _ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return False
    flags = _cpu_flags()
    return flags is None or bool(flags & {"avx512_bf16", "amx_bf16"})


def _cpu_flags() -> set[str] | None:
    """The x86 feature flags of the first CPU in /proc/cpuinfo; None where there is no such file or line."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def stem_error_db(estimate: th.Tensor, reference: th.Tensor) -> list[float]:
    """Per stem, ``10 log10(sum((estimate - reference)^2) / sum(reference^2))`` in dB.

    Both (S, C, T) or (B, S, C, T) with the stems on dim -3; sums over everything else, in float64.
    -inf for an exact match; +inf for a silent reference stem that the estimate is not.
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"shapes differ: {tuple(estimate.shape)} and {tuple(reference.shape)}")
    diff = (estimate.double() - reference.double()).movedim(-3, 0).flatten(1)
    ref = reference.double().movedim(-3, 0).flatten(1)
    out = []
    for d, r in zip(diff.pow(2).sum(1).tolist(), ref.pow(2).sum(1).tolist(), strict=True):
        out.append(-math.inf if d == 0 else (math.inf if r == 0 else 10 * math.log10(d / r)))
    return out


class NetworkCore(nn.Module):
    """htdemucs between its normalised inputs and its outputs, before un-normalisation: what is exported.

    ``forward(x, xt)``: ``x`` the normalised spectrogram, (B, 2C, F, T) float32 with complex-as-channels
    (F = nfft / 2 bins, T = frames); ``xt`` the normalised waveform (B, C, L) with L the training length.
    Returns ``(x, xt)``: (B, S * 2C, F, T) and (B, S * C, L), still normalised. The code is
    ``demucs.htdemucs.HTDemucs.forward`` (demucs 4.x) from after the normalisation to before
    ``x.view(B, S, -1, Fq, T)``, unchanged; the build-time check compares the whole against demucs.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: th.Tensor, xt: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        from einops import rearrange

        m = self.model
        saved = []  # skip connections, freq.
        saved_t = []  # skip connections, time.
        lengths = []  # saved lengths to properly remove padding, freq branch.
        lengths_t = []  # saved lengths for time branch.
        for idx, encode in enumerate(m.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(m.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = m.tencoder[idx]
                xt = tenc(xt)
                if not tenc.empty:
                    saved_t.append(xt)
                else:
                    inject = xt
            x = encode(x, inject)
            if idx == 0 and m.freq_emb is not None:
                frs = th.arange(x.shape[-2], device=x.device)
                emb = m.freq_emb(frs).t()[None, :, :, None].expand_as(x)
                x = x + m.freq_emb_scale * emb
            saved.append(x)
        if m.crosstransformer:
            if m.bottom_channels:
                _, _, f, _ = x.shape
                x = rearrange(x, "b c f t-> b c (f t)")
                x = m.channel_upsampler(x)
                x = rearrange(x, "b c (f t)-> b c f t", f=f)
                xt = m.channel_upsampler_t(xt)
            x, xt = m.crosstransformer(x, xt)
            if m.bottom_channels:
                x = rearrange(x, "b c f t-> b c (f t)")
                x = m.channel_downsampler(x)
                x = rearrange(x, "b c (f t)-> b c f t", f=f)
                xt = m.channel_downsampler_t(xt)
        for idx, decode in enumerate(m.decoder):
            skip = saved.pop(-1)
            x, pre = decode(x, skip, lengths.pop(-1))
            offset = m.depth - len(m.tdecoder)
            if idx >= offset:
                tdec = m.tdecoder[idx - offset]
                length_t = lengths_t.pop(-1)
                if tdec.empty:
                    pre = pre[:, :, 0]
                    xt, _ = tdec(pre, None, length_t)
                else:
                    skip = saved_t.pop(-1)
                    xt, _ = tdec(xt, skip, length_t)
        return x, xt


def _split_forward(model: Any, mix: th.Tensor, network: Any) -> th.Tensor:
    """``HTDemucs.forward`` for a chunk of exactly the training length, with ``network(x, xt)`` in the middle."""
    z = model._spec(mix)
    x = model._magnitude(z).to(mix.device)
    B, _, Fq, T = x.shape
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) / (1e-5 + std)
    xt = mix
    meant = xt.mean(dim=(1, 2), keepdim=True)
    stdt = xt.std(dim=(1, 2), keepdim=True)
    xt = (xt - meant) / (1e-5 + stdt)
    x, xt = network(x, xt)
    S = len(model.sources)
    x = x.view(B, S, -1, Fq, T) * std[:, None] + mean[:, None]
    zout = model._mask(z, x)
    x = model._ispec(zout, mix.shape[-1])
    xt = xt.view(B, S, -1, mix.shape[-1]) * stdt[:, None] + meant[:, None]
    return xt + x


class FastHTDemucs(nn.Module):
    """What ``apply_model`` runs instead of an ``HTDemucs``: the same interface, the network in OpenVINO.

    ``forward(mix)``: (1, C, L) float32 on the CPU with L the training length (what ``apply_model``'s unsplit
    branch hands a model: ``valid_length`` pads every chunk to it) -> (1, S, C, L). Any other input runs
    through the wrapped model. ``precision`` is OpenVINO's inference precision (``bf16`` or ``f32``);
    ``stem_error_db`` is what the build-time check measured for it.
    """

    def __init__(self, model: nn.Module, compiled: Any, precision: str, stem_error_db: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.compiled = compiled
        self.precision = precision
        self.stem_error_db = list(stem_error_db)
        self.samplerate = model.samplerate
        self.segment = model.segment
        self.sources = model.sources
        self.audio_channels = model.audio_channels
        self.training_length = int(model.segment * model.samplerate)
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def valid_length(self, length: int) -> int:
        return self.model.valid_length(length)

    def _network(self, x: th.Tensor, xt: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        with self._lock:
            result = self._request.infer({0: x.contiguous().numpy(), 1: xt.contiguous().numpy()})
            # The request's output buffers are reused by the next inference: copy out under the lock.
            return (th.from_numpy(result[self.compiled.output(0)].copy()),
                    th.from_numpy(result[self.compiled.output(1)].copy()))

    def forward(self, mix: th.Tensor) -> th.Tensor:
        if (mix.dim() != 3 or mix.shape[0] != 1 or mix.shape[1] != self.audio_channels
                or mix.shape[-1] != self.training_length or mix.dtype != th.float32 or mix.device.type != "cpu"):
            return self.model(mix)
        with th.no_grad():
            return _split_forward(self.model, mix, self._network)


def cache_key(model: nn.Module) -> str:
    """Hex digest naming a model's prepared artefact: class, arguments, weights, versions, :data:`FORMAT`.

    Hashes every tensor of the state dict (BLAKE2b, ~0.2 s for htdemucs' 42 M parameters).
    """
    import demucs
    import openvino

    digest = hashlib.blake2b(digest_size=16)
    args = getattr(model, "_init_args_kwargs", None)
    for part in (f"stemforge-fast-cpu/{FORMAT}", th.__version__, demucs.__version__, openvino.__version__,
                 type(model).__module__, type(model).__qualname__, repr(args)):
        digest.update(part.encode() + b"\0")
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode() + b"\0")
        digest.update(tensor.view(-1).view(th.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def probe(model: Any, seed: int = 0) -> th.Tensor:
    """The check's input: one training segment (1, C, L) of tones, a pulse and noise, normalised as the engine does."""
    length = int(model.segment * model.samplerate)
    gen = th.Generator().manual_seed(seed)
    t = th.arange(length, dtype=th.float64) / model.samplerate
    chans = []
    for c in range(model.audio_channels):
        x = 0.2 * th.sin(2 * math.pi * (110 + 55 * c) * t) + 0.1 * th.sin(2 * math.pi * 880 * t)
        x = x + 0.05 * th.sin(2 * math.pi * 2637 * t) * (th.sin(2 * math.pi * 0.5 * t) > 0)
        x = x + 0.3 * (th.sin(2 * math.pi * 2 * t) > 0.95) * th.randn(length, generator=gen, dtype=th.float64)
        x = x + 0.02 * th.randn(length, generator=gen, dtype=th.float64)
        chans.append(x)
    wav = th.stack(chans).float()
    ref = wav.mean(0)
    return ((wav - ref.mean()) / (ref.std() + 1e-8))[None]


_core: Any = None
_core_lock = threading.Lock()


def _ov_core() -> Any:
    global _core
    with _core_lock:
        if _core is None:
            import openvino

            _core = openvino.Core()
        return _core


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created), between processes and threads; a no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the rename into place still keeps readers safe
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _lossless_fp16(model: nn.Module) -> bool:
    """Whether every floating-point weight is a float16 value (demucs' published checkpoints are saved so)."""
    for tensor in model.state_dict().values():
        if tensor.is_floating_point() and not th.equal(tensor, tensor.half().to(tensor.dtype)):
            return False
    return True


def _export(model: Any, folder: Path) -> None:
    """Write ``folder/network.xml`` + ``.bin``: :class:`NetworkCore` via ONNX to OpenVINO IR."""
    import openvino

    mix = probe(model)
    with th.no_grad():
        z = model._spec(mix)
        x = model._magnitude(z)
    core = NetworkCore(model).eval()
    onnx_path = folder / "network.onnx"
    # torch's MHA "fast path" (native multi-head attention) has no ONNX form; the regular path computes the same.
    fastpath = th.backends.mha.get_fastpath_enabled()
    th.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), th.no_grad():
            warnings.simplefilter("ignore")
            th.onnx.export(core, (x, mix), str(onnx_path), input_names=["spec", "wave"],
                           output_names=["spec_out", "wave_out"], opset_version=_ONNX_OPSET, dynamo=False)
    finally:
        th.backends.mha.set_fastpath_enabled(fastpath)
    network = _ov_core().read_model(str(onnx_path))
    openvino.save_model(network, str(folder / "network.xml"), compress_to_fp16=_lossless_fp16(model))
    onnx_path.unlink()


def _compile(folder: Path, precision: str, threads: int) -> Any:
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return _ov_core().compile_model(str(folder / "network.xml"), "CPU", config)


def machine(threads: int) -> str:
    """What a check's timings hold for: the CPU's model name and the thread count."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        name = next((line.partition(":")[2].strip() for line in fh if line.startswith("model name")), name)
    return f"{name} x{threads}"


def _check(model: Any, compiled: Any, precision: str, threads: int) -> dict:
    """The compiled network against float32 demucs on :func:`probe`: per-stem error (dB) and time.

    Times are seconds of one forward on this machine, the better of two alternating runs each after a first
    (untimed) run of each: ``plain_s`` demucs' own forward, ``fast_s`` :class:`FastHTDemucs`.
    """
    mix = probe(model)
    fast = FastHTDemucs(model, compiled, precision, [])
    plain_s, fast_s = [], []
    with th.no_grad():
        reference = model(mix)
        estimate = fast(mix)
        for _ in range(2):
            for runner, times in ((model, plain_s), (fast, fast_s)):
                started = time.perf_counter()
                runner(mix)
                times.append(time.perf_counter() - started)
    return {"stem_error_db": [round(e, 2) for e in stem_error_db(estimate, reference)],
            "plain_s": round(min(plain_s), 4), "fast_s": round(min(fast_s), 4), "machine": machine(threads)}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


class FastCPU:
    """Prepares the fast runner of each HTDemucs a worker loads; the engine holds one per process.

    ``cache_dir``: where artefacts are kept (created). ``precision``: ``"bf16"``, ``"f32"`` or ``None`` for
    ``bf16`` where the CPU has it natively, else ``f32``; a precision that fails the check gives way to the next
    (``bf16``, then ``f32``, then plain demucs). The check passes when every stem is within :data:`ACCEPT_DB` and
    (unless ``speed_margin`` is None) the fast forward took at most ``speed_margin`` of demucs' own.
    ``threads``: OpenVINO's CPU threads, 0 for torch's current count.
    """

    def __init__(self, cache_dir: Path, *, precision: str | None = None, threads: int = 0,
                 speed_margin: float | None = SPEED_MARGIN) -> None:
        if precision not in (None, "bf16", "f32"):
            raise ValueError(f"precision must be bf16, f32 or None, not {precision!r}")
        self.cache_dir = Path(cache_dir)
        self.precision = precision
        self.threads = threads
        self.speed_margin = speed_margin

    def precisions(self) -> list[str]:
        """The precisions to try, best first."""
        if self.precision == "f32":
            return ["f32"]
        if self.precision == "bf16" or native_bf16():
            return ["bf16", "f32"]
        return ["f32"]

    def verdict(self, check: dict) -> str | None:
        """``None`` when a check's record allows the fast path, else why not."""
        errors = check["stem_error_db"]
        if not all(e <= ACCEPT_DB for e in errors):  # NaN fails too
            return f"stems {errors} dB, not all within {ACCEPT_DB} dB of float32"
        if self.speed_margin is not None and not check["fast_s"] <= self.speed_margin * check["plain_s"]:
            return f"{check['fast_s']:.3f} s a forward against demucs' {check['plain_s']:.3f} s"
        return None

    def runner(self, model: Any) -> Any:
        """A :class:`FastHTDemucs` for ``model``, or ``model`` itself where the fast path does not apply.

        Builds the cached artefact on first use (for htdemucs on 2 cores: ~10 s and ~1 GB to export, ~10 s to
        check), then compiles it (~1-3 s). Never raises for a model or a machine the fast path cannot serve: it
        logs why and returns the model.
        """
        reason = supported(model)
        if reason is None and not available():
            reason = "OpenVINO or onnx is not installed"
        if reason is not None:
            log.info("fast CPU path not used: %s", reason)
            return model
        try:
            return self._prepare(model) or model
        except Exception:
            log.warning("fast CPU path failed; running plain demucs", exc_info=True)
            return model

    def _prepare(self, model: Any) -> FastHTDemucs | None:
        started = time.monotonic()
        key = cache_key(model)
        folder = self.cache_dir / key
        threads = self.threads or th.get_num_threads()
        here = machine(threads)
        refused: dict[str, str] = {}
        for precision in self.precisions():
            meta, compiled = _read_meta(folder), None
            if meta is None or meta["checks"].get(precision, {}).get("machine") != here:
                meta, compiled = self._build(model, key, folder, precision, threads)
            check = meta["checks"][precision]
            reason = self.verdict(check)
            if reason is None:
                compiled = compiled or _compile(folder, precision, threads)
                log.info("fast CPU path: %s in OpenVINO %s, stems within %s dB of float32, %.2f s a forward against "
                         "%.2f s (ready in %.1f s)", type(model).__name__, precision, check["stem_error_db"],
                         check["fast_s"], check["plain_s"], time.monotonic() - started)
                return FastHTDemucs(model, compiled, precision, check["stem_error_db"])
            refused[precision] = reason
        log.warning("fast CPU path not used for %s: %s", type(model).__name__, refused)
        return None

    def _build(self, model: Any, key: str, folder: Path, precision: str, threads: int) -> tuple[dict, Any]:
        """Under the key's lock: export the artefact if it is missing, check ``precision`` if it is unchecked here.

        Returns the meta data and the model compiled for the check (``None`` when another process checked it).
        """
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.cache_dir / f"{key}.lock"):
            meta = _read_meta(folder)
            if meta is None:
                # Whatever a dead builder left for this key (a private folder, a folder without meta) goes now.
                for stale in [*self.cache_dir.glob(f".build-{key}-*"), folder]:
                    if stale.exists():
                        shutil.rmtree(stale, ignore_errors=True)
                build = self.cache_dir / f".build-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                build.mkdir()
                try:
                    started = time.monotonic()
                    _export(model, build)
                    meta = {"format": FORMAT, "key": key, "class": f"{type(model).__module__}.{type(model).__name__}",
                            "segment_samples": int(model.segment * model.samplerate), "checks": {},
                            "export_s": round(time.monotonic() - started, 1)}
                    _write_json(build / "meta.json", meta)
                    os.replace(build, folder)
                finally:
                    if build.exists():
                        shutil.rmtree(build, ignore_errors=True)
            compiled = None
            if meta["checks"].get(precision, {}).get("machine") != machine(threads):
                compiled = _compile(folder, precision, threads)
                meta["checks"][precision] = _check(model, compiled, precision, threads)
                _write_json(folder / "meta.json", meta)
        return meta, compiled
