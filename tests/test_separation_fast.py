"""The fast CPU path (core/separation/fast_cpu.py) against plain demucs: the -40 dB bound per stem, the cache, the
fallbacks. Tiny models of the real classes (tests/fakes/demucs_models.py) and the real htdemucs architecture with
random weights; demucs' own ``apply_model`` in float32 is the reference throughout.

On a CPU without native bfloat16 the fast path picks ``f32``; a test that asks for ``bf16`` gets what OpenVINO does
there (emulation, or f32 without AVX-512) and checks the bound all the same. Tiny models run no faster through
OpenVINO than through torch (the STFTs dominate), so the tests take the fast path whatever its speed
(``speed_margin=None``); where bfloat16 is native the real architecture's check must also show the speed-up the
engine demands.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch as th
from demucs.apply import apply_model
from demucs.pretrained import get_model

from core.separation import fast_cpu
from core.separation.fast_cpu import BOUND_DB, FastCPU, FastHTDemucs, stem_error_db
from core.separation.local import LocalEngine
from core.separation.windowed import WindowedSeparation
from core.settings import Settings
from tests.test_separation_local import SR, music

warnings.filterwarnings("ignore", message=".*zero-element tensors.*")

pytestmark = pytest.mark.skipif(not fast_cpu.available(), reason="OpenVINO or onnx is not installed")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artefact cache for the module: each tiny model is exported once."""
    return tmp_path_factory.mktemp("fast-cpu-cache")


def any_speed(cache_dir: Path, **kwargs: Any) -> FastCPU:
    """A FastCPU that takes the fast path for tiny models too (they gain no speed)."""
    return FastCPU(cache_dir, speed_margin=None, **kwargs)


def first_model(repo: Path, name: str) -> Any:
    model = get_model(name, repo=repo).models[0]
    model.eval()
    return model


def normalised(seconds: float, seed: int = 0) -> th.Tensor:
    """(1, 2, n) music-like input normalised as the engine does it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wav = np.stack([0.2 * np.sin(2 * np.pi * (110 + 55 * c) * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
                    + 0.3 * (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.shape)
                    + 0.02 * rng.standard_normal(t.shape) for c in range(2)])
    x = th.from_numpy(wav.astype(np.float32))
    ref = x.mean(0)
    return ((x - ref.mean()) / (ref.std() + 1e-8))[None]


def separate(model: Any, wav: th.Tensor) -> th.Tensor:
    return apply_model(model, wav, shifts=0, split=True, overlap=0.25)


def test_stem_error_db() -> None:
    ref = th.ones(4, 2, 100)
    est = ref.clone()
    assert stem_error_db(est, ref) == [-math.inf] * 4
    est[1] += 0.01  # error energy 1e-4 of the stem's
    est[3] = 0
    assert stem_error_db(est, ref)[1] == pytest.approx(-40.0)
    assert stem_error_db(est, ref)[3] == pytest.approx(0.0)
    assert stem_error_db(est[None], ref[None]) == stem_error_db(est, ref)
    with pytest.raises(ValueError):
        stem_error_db(est[:2], ref)


@pytest.mark.parametrize("name", ["htdemucs", "htdemucs_6s"])
def test_tiny_models_within_the_bound(demucs_repo: Path, cache: Path, name: str) -> None:
    model = first_model(demucs_repo, name)
    runner = any_speed(cache).runner(model)
    assert isinstance(runner, FastHTDemucs)
    assert runner.precision == ("bf16" if fast_cpu.native_bf16() else "f32")
    wav = normalised(4.0, seed=1)  # 1.5 s segments: four chunks, the last one short
    reference, fast = separate(model, wav), separate(runner, wav)
    errors = stem_error_db(fast, reference)
    assert len(errors) == len(model.sources)
    assert max(errors) <= BOUND_DB, errors
    assert max(errors) > -150, "the fast path ran nothing of its own"


def test_f32_is_demucs_to_float_rounding(demucs_repo: Path, cache: Path) -> None:
    """The exported network computes what demucs computes: in f32 only float rounding separates them."""
    model = first_model(demucs_repo, "htdemucs")
    runner = any_speed(cache, precision="f32").runner(model)
    assert isinstance(runner, FastHTDemucs) and runner.precision == "f32"
    wav = normalised(3.0, seed=2)
    assert max(stem_error_db(separate(runner, wav), separate(model, wav))) <= -80


def test_bf16_asked_for_keeps_the_bound(demucs_repo: Path, cache: Path) -> None:
    """bfloat16 forced even where the CPU lacks it natively (OpenVINO then emulates it or runs f32)."""
    model = first_model(demucs_repo, "htdemucs_6s")
    runner = any_speed(cache, precision="bf16").runner(model)
    assert isinstance(runner, FastHTDemucs) and runner.precision == "bf16"
    wav = normalised(3.0, seed=3)
    assert max(stem_error_db(separate(runner, wav), separate(model, wav))) <= BOUND_DB


def test_other_inputs_run_through_the_model_itself(demucs_repo: Path, cache: Path) -> None:
    model = first_model(demucs_repo, "htdemucs")
    runner = any_speed(cache).runner(model)
    length = int(model.segment * model.samplerate)
    batch = th.randn(2, 2, length)  # the export is for one chunk at a time
    with th.no_grad():
        assert th.equal(runner(batch), model(batch))
        short = th.randn(1, 2, length // 2)
        assert th.equal(runner(short), model(short))


def test_real_htdemucs_architecture_within_the_bound(tmp_path: Path) -> None:
    """The published htdemucs hyper-parameters (42 M parameters), random weights, one 5 s chunk.

    Where bfloat16 is native the check's timing must show the speed-up the engine demands (~0.45 of demucs'
    time here against the 0.9 asked); elsewhere f32 gains less, so timing is not asserted there.
    """
    from tests.fakes.demucs_models import build_full_htdemucs

    model = first_model(build_full_htdemucs(tmp_path / "repo"), "htdemucs")
    runner = any_speed(tmp_path / "cache").runner(model)
    assert isinstance(runner, FastHTDemucs)
    check = json.loads((tmp_path / "cache" / fast_cpu.cache_key(model) / "meta.json").read_text())["checks"]
    assert max(check[runner.precision]["stem_error_db"]) <= fast_cpu.ACCEPT_DB
    if fast_cpu.native_bf16():
        assert runner.precision == "bf16"
        assert FastCPU(tmp_path / "cache").verdict(check["bf16"]) is None
    wav = normalised(5.0, seed=4)
    errors = stem_error_db(separate(runner, wav), separate(model, wav))
    assert max(errors) <= BOUND_DB, errors


def test_unsupported_models_run_plain_demucs(demucs_repo: Path, cache: Path) -> None:
    prepare = any_speed(cache)
    for sub in get_model("mdx_extra", repo=demucs_repo).models:  # HDemucs
        assert prepare.runner(sub) is sub
    model = first_model(demucs_repo, "htdemucs")
    model.use_train_segment = False
    try:
        assert prepare.runner(model) is model
    finally:
        model.use_train_segment = True
    assert fast_cpu.supported(th.nn.Linear(2, 2)) is not None


def test_without_the_runtime_plain_demucs_to_the_bit(demucs_repo: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenVINO or onnx missing: the engine runs demucs itself and its stems are exactly the plain engine's."""
    monkeypatch.setattr(fast_cpu, "available", lambda: False)
    source = music(tmp_path / "song.wav", 3.0, seed=6)
    settings = Settings(data_dir=tmp_path / "data", demucs_repo=str(demucs_repo), separation_threads=1)
    engine = LocalEngine(settings)
    assert engine.fast_cpu is not None
    runners = engine.runners("htdemucs_ft")
    assert runners == list(engine.model("htdemucs_ft").models)
    stems = engine.separate(source, tmp_path / "a", "htdemucs_ft")
    plain = LocalEngine(settings, fast_cpu=False).separate(source, tmp_path / "b", "htdemucs_ft")
    for a, b in zip(stems, plain, strict=True):
        assert np.array_equal(sf.read(str(a.path))[0], sf.read(str(b.path))[0])
    assert not (tmp_path / "data" / "cache" / "fast_cpu").exists()


def test_a_failing_export_falls_back(demucs_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    def broken(model: Any, folder: Path) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(fast_cpu, "_export", broken)
    model = first_model(demucs_repo, "htdemucs")
    with caplog.at_level(logging.WARNING, logger="stemforge.separation"):
        assert any_speed(tmp_path).runner(model) is model
    assert "exporter exploded" in caplog.text
    assert not any(p.name.startswith(".build-") for p in tmp_path.iterdir())  # no half-built folder left


def test_a_failed_check_falls_back_and_is_remembered(demucs_repo: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights whose error misses the bound on the probe run plain demucs; the verdict is kept with the artefact."""
    monkeypatch.setattr(fast_cpu, "ACCEPT_DB", -400.0)
    model = first_model(demucs_repo, "htdemucs")
    prepare = any_speed(tmp_path, precision="bf16")
    assert prepare.runner(model) is model
    meta_file = tmp_path / fast_cpu.cache_key(model) / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert set(meta["checks"]) == {"bf16", "f32"}
    for check in meta["checks"].values():
        assert check["machine"] == fast_cpu.machine(th.get_num_threads())
        assert len(check["stem_error_db"]) == 4 and check["plain_s"] > 0 and check["fast_s"] > 0
        assert prepare.verdict(check) is not None
    calls = []
    monkeypatch.setattr(fast_cpu, "_check", lambda *args: calls.append(args) or {})
    assert prepare.runner(model) is model
    assert calls == []  # read from meta.json, not measured again
    # Measured on another CPU (or thread count): measured again here.
    meta["checks"]["bf16"]["machine"] = "some other CPU x64"
    meta_file.write_text(json.dumps(meta))
    monkeypatch.undo()
    assert isinstance(any_speed(tmp_path, precision="bf16").runner(model), FastHTDemucs)
    assert json.loads(meta_file.read_text())["checks"]["bf16"]["machine"] == fast_cpu.machine(th.get_num_threads())


def test_no_speed_up_no_fast_path(demucs_repo: Path, cache: Path) -> None:
    """The engine's default demands the fast forward be quicker than demucs' own by SPEED_MARGIN."""
    model = first_model(demucs_repo, "htdemucs")
    assert isinstance(any_speed(cache).runner(model), FastHTDemucs)  # measured, and accurate
    assert FastCPU(cache, speed_margin=1e-6).runner(model) is model
    check = json.loads((cache / fast_cpu.cache_key(model) / "meta.json").read_text())["checks"]
    precision = "bf16" if fast_cpu.native_bf16() else "f32"
    assert "a forward against demucs'" in FastCPU(cache, speed_margin=1e-6).verdict(check[precision])
    assert fast_cpu.SPEED_MARGIN < 1


@pytest.mark.skipif(not fast_cpu.available() or not fast_cpu.native_bf16(), reason="no native bfloat16 here")
def test_weights_too_coarse_for_bf16_run_in_f32(demucs_repo: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A bar between bf16's error and f32's: bf16 is refused by the check, f32 is taken."""
    model = first_model(demucs_repo, "htdemucs")
    monkeypatch.setattr(fast_cpu, "ACCEPT_DB", -80.0)  # tiny htdemucs: bf16 ~ -60 dB, f32 ~ -120 dB
    runner = any_speed(tmp_path).runner(model)
    assert isinstance(runner, FastHTDemucs) and runner.precision == "f32"
    checks = json.loads((tmp_path / fast_cpu.cache_key(model) / "meta.json").read_text())["checks"]
    assert max(checks["bf16"]["stem_error_db"]) > -80 >= max(checks["f32"]["stem_error_db"])


def test_the_artefact_is_built_once_and_reused(demucs_repo: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers preparing one checkpoint at once export it once; a later worker only compiles it."""
    exports = []
    real_export = fast_cpu._export

    def counting(model: Any, folder: Path) -> None:
        exports.append(folder)
        real_export(model, folder)

    monkeypatch.setattr(fast_cpu, "_export", counting)
    models = [first_model(demucs_repo, "htdemucs") for _ in range(2)]  # two loads of one checkpoint
    assert fast_cpu.cache_key(models[0]) == fast_cpu.cache_key(models[1])
    results: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def prepare(i: int) -> None:
        barrier.wait()
        results[i] = any_speed(tmp_path).runner(models[i])

    threads = [threading.Thread(target=prepare, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, FastHTDemucs) for r in results)
    assert len(exports) == 1
    key = fast_cpu.cache_key(models[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [key, f"{key}.lock"]
    assert sorted(p.name for p in (tmp_path / key).iterdir()) == ["meta.json", "network.bin", "network.xml"]
    assert isinstance(any_speed(tmp_path).runner(first_model(demucs_repo, "htdemucs")), FastHTDemucs)
    assert len(exports) == 1
    other = first_model(demucs_repo, "htdemucs_6s")
    assert fast_cpu.cache_key(other) != key


def test_the_engine_runs_the_fast_path_within_the_bound(demucs_repo: Path, tmp_path: Path) -> None:
    """LocalEngine on the CPU: a bag of HTDemucs runs model by model through the fast path, HDemucs plainly."""
    settings = Settings(data_dir=tmp_path / "data", demucs_repo=str(demucs_repo), separation_threads=1,
                        separation_model_cache=1)
    engine = LocalEngine(settings, fast_cpu=any_speed(tmp_path / "data" / "cache"))
    assert engine.fast_cpu is not None
    assert all(isinstance(r, FastHTDemucs) for r in engine.runners("htdemucs_ft"))
    source = music(tmp_path / "song.wav", 3.0, seed=7)
    fast = engine.separate(source, tmp_path / "fast", "htdemucs_ft")
    plain = LocalEngine(settings, fast_cpu=False).separate(source, tmp_path / "plain", "htdemucs_ft")
    for a, b in zip(fast, plain, strict=True):
        assert a.stem_type == b.stem_type
        got = th.from_numpy(sf.read(str(a.path), dtype="float32")[0])
        want = th.from_numpy(sf.read(str(b.path), dtype="float32")[0])
        assert stem_error_db(got.T[None], want.T[None])[0] <= BOUND_DB, a.stem_type
    # HDemucs has no fast path; evicting a model drops its runners with it.
    assert engine.runners("mdx_extra") == list(engine.model("mdx_extra").models)
    assert engine.loaded() == ["mdx_extra"] and len(engine._runners) == 1


def test_cuda_and_switched_off_engines_run_plain_demucs(demucs_repo: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, demucs_repo=str(demucs_repo), separation_threads=1)
    assert LocalEngine(settings, device="cuda").fast_cpu is None  # never touched: no GPU needed to construct
    engine = LocalEngine(settings, fast_cpu=False)
    assert engine.fast_cpu is None
    assert engine.runners("htdemucs") == list(engine.model("htdemucs").models)


def test_windowed_runners_must_match_the_bag(demucs_repo: Path) -> None:
    model = get_model("htdemucs_ft", repo=demucs_repo)
    with pytest.raises(ValueError, match="3 runners for 4 models"):
        WindowedSeparation(model, 1000, runners=list(model.models)[:3])
