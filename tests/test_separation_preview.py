"""A preview window of the local engine: only the chunks of the whole track's grid that reach into the window are
run, and the window's samples are exactly those of the whole separation (tiny models in demucs' own format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch as th

from core.progress import BadInput
from core.separation.local import LocalEngine
from core.separation.windowed import WindowedSeparation
from tests.test_separation_local import SR, engine, music, reference  # noqa: F401  (engine: the fixture)


@pytest.mark.parametrize(("name", "window"), [
    ("htdemucs_ft", (0.3, 1.2)),  # inside the first chunk
    ("htdemucs_ft", (1.4, 3.9)),  # across chunk boundaries (1.5 s segments)
    ("mdx_extra", (2.0, 4.3)),  # a bag of models, to the very end
])
def test_a_window_is_exactly_that_part_of_the_whole_separation(engine: LocalEngine, name: str,  # noqa: F811
                                                               window: tuple[float, float], tmp_path: Path) -> None:
    source = music(tmp_path / "song.wav", 4.3, seed=5)
    model = engine.model(name)
    wav = th.from_numpy(sf.read(str(source), dtype="float32", always_2d=True)[0].T.copy())
    whole = reference(model, wav)
    a, b = round(window[0] * SR), min(wav.shape[-1], round(window[1] * SR))

    # Only the chunks that reach into the window: those starting in (a - segment, b), per model of a bag.
    subs = list(getattr(model, "models", [model]))
    expected = 0
    for sub in subs:
        segment = int(sub.samplerate * sub.segment)
        stride = int(0.75 * segment)
        expected += sum(1 for o in range(0, wav.shape[-1], stride) if a - segment < o < b)
    assert WindowedSeparation(model, wav.shape[-1], window=(a, b)).total_chunks == expected

    stems = engine.separate(source, tmp_path / "stems", name, read_frames=10_000, window=window)
    for k, stem in enumerate(stems):
        written = sf.read(str(stem.path), dtype="float32", always_2d=True)[0].T
        assert written.shape == (2, b - a)
        expected = np.clip(whole[k, :, a:b].numpy(), -1, 1)
        assert np.abs(written - expected).max() <= 1.5 / 32768, stem.stem_type


def test_a_window_outside_the_track_is_refused(engine: LocalEngine, tmp_path: Path) -> None:  # noqa: F811
    source = music(tmp_path / "song.wav", 2.0)
    with pytest.raises(BadInput, match="outside the track"):
        engine.separate(source, tmp_path / "stems", "htdemucs_ft", window=(5.0, 8.0))
    with pytest.raises(ValueError):
        WindowedSeparation(engine.model("htdemucs_ft"), 1000, window=(500, 1500))
