"""The local separation engine: real demucs (tiny random models loaded by its own loader), real files.

No server and no network: the engine is called the way a job calls it, with a progress callback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch as th
from demucs.apply import apply_model
from demucs.pretrained import get_model

from core.progress import BadInput, JobCancelled
from core.separation import catalog, weights
from core.separation.audio_stream import AudioStream
from core.separation.local import LocalEngine, pick_device
from core.separation.windowed import WindowedSeparation
from core.settings import Settings
from tests.audio import write_audio

ROOT = Path(__file__).resolve().parent.parent
SR = 44100

warnings.filterwarnings("ignore", message=".*zero-element tensors.*")


def music(path: Path, seconds: float, sr: int = SR, channels: int = 2, seed: int = 0) -> Path:
    """A few seconds of something music-like (tones, a pulse, noise), different in each channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    chans = []
    for c in range(channels):
        x = 0.2 * np.sin(2 * np.pi * (110 + 55 * c) * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
        x += 0.3 * (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.shape)
        x += 0.02 * rng.standard_normal(t.shape)
        chans.append(x)
    sf.write(path, np.stack(chans, axis=1).astype(np.float32), sr)
    return path


@pytest.fixture(scope="module")
def engine(demucs_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalEngine:
    """The engine with plain demucs (no fast CPU path): its output is compared with apply_model's to the bit.

    The fast path (core/separation/fast_cpu.py) is tested against the bound it keeps in test_separation_fast.py.
    """
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), demucs_repo=str(demucs_repo),
                        separation_threads=1, separation_model_cache=4)
    return LocalEngine(settings, fast_cpu=False)


class Recorder:
    def __init__(self, cancel_after: float | None = None) -> None:
        self.calls: list[tuple[float, str]] = []
        self.cancel_after = cancel_after

    def __call__(self, percent: float, message: str = "") -> None:
        self.calls.append((percent, message))
        if self.cancel_after is not None and percent >= self.cancel_after:
            raise JobCancelled("cancelled by the test")

    @property
    def percents(self) -> list[float]:
        return [p for p, _ in self.calls]


def test_catalogue_is_the_contract() -> None:
    listed = [(m.name, m.description, m.stems) for m in catalog.MODELS]
    assert listed == [
        ("htdemucs", "Hybrid Transformer Demucs - default 4-stem model", 4),
        ("htdemucs_ft", "Fine-tuned Hybrid Transformer Demucs - higher quality, slower", 4),
        ("htdemucs_6s", "6-stem model (vocals, drums, bass, guitar, piano, other)", 6),
        ("mdx_extra", "MDX-Net Extra - alternative architecture, good for vocals", 4),
    ]
    assert set(catalog.model_info("htdemucs_6s").stem_names) == {"vocals", "drums", "bass", "guitar", "piano", "other"}
    with pytest.raises(BadInput, match="htdemucs, htdemucs_ft, htdemucs_6s, mdx_extra"):
        catalog.model_info("spleeter")


@pytest.mark.parametrize("name", catalog.MODEL_NAMES)
def test_each_model_separates_into_its_stems(engine: LocalEngine, name: str, tmp_path: Path) -> None:
    source = music(tmp_path / "song.wav", 3.0)
    progress = Recorder()
    stems = engine.separate(source, tmp_path / "stems", name, progress)

    info = catalog.model_info(name)
    assert [s.stem_type for s in stems] == list(get_model(name, repo=engine.repo).sources)
    assert sorted(s.stem_type for s in stems) == sorted(info.stem_names)
    for stem in stems:
        assert stem.path == tmp_path / "stems" / f"{stem.stem_type}.wav"
        assert stem.format == "wav" and stem.size == stem.path.stat().st_size
        meta = sf.info(str(stem.path))
        assert (meta.samplerate, meta.channels, meta.frames) == (SR, 2, 3 * SR)
        assert np.abs(sf.read(str(stem.path))[0]).max() > 0
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == sorted(f"{s}.wav" for s in info.stem_names)
    # Progress: starts at 0, never goes back, passes through the chunks, ends at exactly 100.
    assert progress.percents[0] == 0 and progress.percents[-1] == 100
    assert progress.percents == sorted(progress.percents)
    assert len({p for p in progress.percents if 3 < p < 100}) >= 3


def reference(model: object, wav: th.Tensor) -> th.Tensor:
    """demucs on the whole track at once, as demucs.api.Separator does it (no random shift)."""
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True, overlap=0.25)
    return (out * std + mean)[0]


@pytest.mark.parametrize("name", ["htdemucs_ft", "mdx_extra"])
def test_windowed_equals_whole_track(engine: LocalEngine, name: str, tmp_path: Path) -> None:
    """A 4.3-second input in 1.5 s (or 2 s) chunks and 10 000-sample reads: many windows, one result."""
    source = music(tmp_path / "song.wav", 4.3, seed=3)
    model = engine.model(name)
    wav = th.from_numpy(sf.read(str(source), dtype="float32", always_2d=True)[0].T.copy())
    whole = reference(model, wav)

    stream = AudioStream(source, SR, 2)
    loud = stream.loudness()
    assert loud.frames == wav.shape[-1]
    assert loud.mean == pytest.approx(float(wav.mean(0).mean()), abs=1e-7)
    assert loud.std == pytest.approx(float(wav.mean(0).std()), rel=1e-5)
    mean, std = th.tensor(loud.mean, dtype=th.float32), th.tensor(loud.std, dtype=th.float32) + 1e-8
    run = WindowedSeparation(model, loud.frames)
    assert run.total_chunks >= 4 * 3  # four models, several chunks each
    blocks = ((th.from_numpy(b) - mean) / std for b in stream.blocks(10_000))
    pieces = list(run.run(blocks))
    assert len(pieces) > 2
    windowed = th.cat(pieces, dim=-1) * std + mean
    assert windowed.shape == whole.shape
    assert (windowed - whole).abs().max().item() < 1e-5

    # The engine's files hold the same within 16-bit quantisation.
    stems = engine.separate(source, tmp_path / "stems", name, read_frames=10_000)
    for k, stem in enumerate(stems):
        written = sf.read(str(stem.path), dtype="float32", always_2d=True)[0].T
        expected = np.clip(whole[k].numpy(), -1, 1)
        assert np.abs(written - expected).max() <= 1.5 / 32768


def test_cancel_from_the_progress_callback_stops_the_work(engine: LocalEngine, tmp_path: Path) -> None:
    source = music(tmp_path / "song.wav", 4.0)
    progress = Recorder(cancel_after=10)
    with pytest.raises(JobCancelled):
        engine.separate(source, tmp_path / "stems", "htdemucs_ft", progress)
    # It stopped right after the report that crossed 10 %, far from the end, and left no files.
    assert max(progress.percents) < 40
    assert not any((tmp_path / "stems").iterdir())


def test_corrupt_audio_is_bad_input(engine: LocalEngine, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3\x03\x00\x00\x00" + os.urandom(20_000))
    with pytest.raises(BadInput, match="broken.mp3") as err:
        engine.separate(bad, tmp_path / "stems", "htdemucs")
    assert "decode" in str(err.value)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), dtype=np.float32), SR)
    with pytest.raises(BadInput, match="no audio"):
        engine.separate(empty, tmp_path / "stems", "htdemucs")
    with pytest.raises(BadInput, match="does not exist"):
        engine.separate(tmp_path / "nothing.wav", tmp_path / "stems", "htdemucs")
    assert not (tmp_path / "stems").exists() or not any((tmp_path / "stems").iterdir())


def test_other_rates_channels_and_containers_go_through_ffmpeg(engine: LocalEngine, tmp_path: Path) -> None:
    mono = music(tmp_path / "mono.flac", 2.0, sr=22050, channels=1)
    stems = engine.separate(mono, tmp_path / "a", "htdemucs")
    assert {sf.info(str(s.path)).frames for s in stems} == {2 * SR}
    assert {sf.info(str(s.path)).channels for s in stems} == {2}
    m4a = write_audio(tmp_path / "song.m4a", seconds=2.0)
    stems = engine.separate(m4a, tmp_path / "b", "htdemucs")
    assert all(abs(sf.info(str(s.path)).frames - 2 * SR) < 2048 for s in stems)  # AAC adds priming samples


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_stem_formats(engine: LocalEngine, fmt: str, tmp_path: Path) -> None:
    stems = engine.separate(music(tmp_path / "song.wav", 2.0), tmp_path / "stems", "htdemucs", fmt=fmt)
    assert [s.path.name for s in stems] == [f"{s.stem_type}.{fmt}" for s in stems]
    for stem in stems:
        meta = sf.info(str(stem.path))
        assert meta.format == fmt.upper() and meta.samplerate == SR
        assert abs(meta.frames - 2 * SR) < 2 * 1152  # MP3 frames round the length up


def test_models_stay_warm_in_a_bounded_cache(demucs_repo: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, demucs_repo=str(demucs_repo), separation_threads=1,
                        separation_model_cache=2)
    engine = LocalEngine(settings, fast_cpu=False)
    first = engine.model("htdemucs")
    assert engine.model("htdemucs") is first
    engine.model("htdemucs_6s")
    engine.model("htdemucs")  # used again: now the most recent
    engine.model("mdx_extra")  # evicts the least recently used: htdemucs_6s
    assert engine.loaded() == ["htdemucs", "mdx_extra"]
    assert engine.model("htdemucs") is first


def test_device_is_cpu_with_every_core_without_a_gpu() -> None:
    before = th.get_num_threads()
    try:
        device = pick_device("")
        assert device.type == ("cuda" if th.cuda.is_available() else "cpu")
        if device.type == "cpu":
            assert th.get_num_threads() == len(os.sched_getaffinity(0))
    finally:
        th.set_num_threads(before)


def test_fused_attention_on_the_cpu_gives_torchs_default_result(engine: LocalEngine, tmp_path: Path) -> None:
    """The engine turns torch's MHA fast path off on the CPU (speed); the stems must not change."""
    assert engine.device.type != "cpu" or not th.backends.mha.get_fastpath_enabled()
    model = engine.model("htdemucs")
    wav = th.from_numpy(sf.read(str(music(tmp_path / "a.wav", 3.0, seed=5)), dtype="float32",
                                always_2d=True)[0].T.copy())
    fused = reference(model, wav)
    th.backends.mha.set_fastpath_enabled(True)
    try:
        default = reference(model, wav)
    finally:
        th.backends.mha.set_fastpath_enabled(engine.device.type != "cpu")
    assert (fused - default).abs().max().item() < 1e-5
    assert fused.abs().max().item() > 1e-3  # a real output, not silence on both sides


def test_missing_model_in_the_offline_folder_says_how_to_get_it(demucs_repo: Path, tmp_path: Path) -> None:
    partial = tmp_path / "models"
    partial.mkdir()
    shutil.copy(demucs_repo / "htdemucs.yaml", partial)
    for sig in weights._bag_signatures(partial / "htdemucs.yaml"):
        for file in demucs_repo.glob(f"{sig}*.th"):
            shutil.copy(file, partial)
    assert weights.presence(partial) == {"htdemucs": True, "htdemucs_ft": False, "htdemucs_6s": False,
                                         "mdx_extra": False}
    engine = LocalEngine(Settings(data_dir=tmp_path, demucs_repo=str(partial), separation_threads=1))
    with pytest.raises(BadInput) as err:
        engine.separate(music(tmp_path / "song.wav", 1.0), tmp_path / "stems", "htdemucs_ft")
    message = str(err.value)
    assert "python main.py models fetch htdemucs_ft" in message and "STEMFORGE_DEMUCS_REPO" in message
    assert not (tmp_path / "stems").exists()


def test_export_writes_a_folder_demucs_loads_identically(engine: LocalEngine, tmp_path: Path) -> None:
    for name in ("htdemucs_ft", "mdx_extra"):
        original = engine.model(name)
        weights.export(original, name, tmp_path / "exported")
        assert weights.weights_present(name, tmp_path / "exported")
        again = get_model(name, repo=tmp_path / "exported")
        assert again.weights == original.weights
        assert [m.segment for m in again.models] == [m.segment for m in original.models]
        for a, b in zip(again.models, original.models, strict=True):
            assert all(th.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_presence_in_demucs_download_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an offline folder, weights count as present when demucs' own caches hold every file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    assert not any(weights.presence(None).values())
    # torch.hub cache, as demucs' legacy download leaves it: hub/checkpoints/<file from remote/files.txt>
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "955717e8-8726e21a.th").write_bytes(b"x")
    # HuggingFace cache, as hf_hub_download leaves it: models--<ns>--<repo>/{refs/main,snapshots/<rev>/...}
    repo = tmp_path / "hf" / "models--adefossez--HTDemucs-6s"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "htdemucs_6s.yaml").write_text("models: ['5c90dfd2']\n")
    (snapshot / "5c90dfd2.safetensors").write_bytes(b"x")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert weights.presence(None) == {"htdemucs": True, "htdemucs_ft": False, "htdemucs_6s": True,
                                      "mdx_extra": False}


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEMFORGE_")}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env={**base, "STEMFORGE_LOG_LEVEL": "warning",
                                                                            **env},
                          capture_output=True, text=True, timeout=240, check=False)


def test_cli_lists_models_and_separates_a_file(demucs_repo: Path, tmp_path: Path) -> None:
    env = {"STEMFORGE_DEMUCS_REPO": str(demucs_repo), "STEMFORGE_DATA_DIR": str(tmp_path / "data"),
           "STEMFORGE_SEPARATION_THREADS": "1"}
    listed = _cli("models", **env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(catalog.MODEL_NAMES)
    assert all("present" in line for line in lines)

    song = music(tmp_path / "song.wav", 2.0)
    done = _cli("separate", str(song), "--model", "htdemucs_6s", "--out", str(tmp_path / "out"), **env)
    assert done.returncode == 0, done.stderr
    assert sorted(Path(p).name for p in done.stdout.split()) == sorted(
        f"{s}.wav" for s in catalog.model_info("htdemucs_6s").stem_names)
    assert "100%" in done.stderr  # the progress bar ran to the end


def test_cli_offline_without_weights_says_how_to_fetch(tmp_path: Path) -> None:
    """No offline folder and no network (HuggingFace offline, every download to a closed local port)."""
    env = {"STEMFORGE_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "TORCH_HOME": str(tmp_path / "torch"), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    listed = _cli("models", **env)
    assert listed.returncode == 0 and listed.stdout.count("missing") == 4
    failed = _cli("separate", str(music(tmp_path / "song.wav", 1.0)), "--model", "htdemucs", **env)
    assert failed.returncode == 1
    assert "python main.py models fetch htdemucs" in failed.stderr
    fetch = _cli("models", "fetch", "htdemucs", **env)
    assert fetch.returncode == 1 and "Could not download model 'htdemucs'" in fetch.stderr
