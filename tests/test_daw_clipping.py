"""The clipped-sample count known before rendering (from the stems' peaks) equals the count of the render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.daw.clipping import count_clipped_ahead, suspect_ranges
from core.daw.manifest import parse_manifest
from core.daw.mixdown import Mixdown, stem_audio
from core.daw.peaks import compute_peaks
from tests.test_daw_mixdown import write_stem

SR = 8000


def counts(doc: dict[str, Any], paths: list[Path]) -> tuple[int, int, list[tuple[int, int]]]:
    mixdown = Mixdown(parse_manifest(doc), [stem_audio(p) for p in paths], block_frames=1000)
    ahead = count_clipped_ahead(mixdown, compute_peaks)
    rendered = mixdown.count_clipped(mixdown.first, mixdown.end)
    return ahead, rendered, suspect_ranges(mixdown, compute_peaks)


def test_a_quiet_mix_renders_nothing_twice_and_a_loud_span_only_itself(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"s{i}.wav"
        write_stem(path, rng.uniform(-0.3, 0.3, (SR * 4, 2)), SR)
        paths.append(path)
    quiet = {"version": 1, "stems": [{"file_index": i} for i in range(3)]}
    assert counts(quiet, paths) == (0, 0, [])
    loud = {"version": 1, "stems": [{"file_index": i, "operations": [
        {"id": "g", "type": "gain", "params": {"start_ms": 1000, "end_ms": 1500, "level": 3}}]} for i in range(3)]}
    ahead, rendered, ranges = counts(loud, paths)
    assert ahead == rendered > 0
    assert sum(b - a for a, b in ranges) < SR  # about the half second of the gain span, not the 4 s
    muted = {**loud, "stems": [{**s, "muted": True} for s in loud["stems"]]}
    assert counts(muted, paths) == (0, 0, [])


def test_stems_at_full_scale_count_as_unknown_and_are_rendered(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    write_stem(path, np.full((SR, 1), 1.5, dtype=np.float32), SR)  # a float file beyond full scale
    doc = {"version": 1, "stems": [{"file_index": 0, "volume": 0.5, "operations": [
        {"id": "t", "type": "trim", "params": {"start_ms": 0, "end_ms": 500}}]}]}
    ahead, rendered, _ = counts(doc, [path])
    assert ahead == rendered == 0  # 1.5 * 0.5 = 0.75: nothing clips, though the peaks could not say so
    doc["stems"][0]["volume"] = 0.8
    ahead, rendered, _ = counts(doc, [path])
    assert ahead == rendered > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_count_ahead_equals_the_rendered_count(tmp_path: Path, data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 3))
    paths, stems = [], []
    for i in range(count):
        frames = data.draw(st.integers(300, 3000))
        channels = data.draw(st.sampled_from([1, 2]))
        scale = data.draw(st.floats(0.05, 1.0))
        seed = data.draw(st.integers(0, 1000))
        path = tmp_path / f"p{i}.wav"
        write_stem(path, np.random.default_rng(seed).uniform(-scale, scale, (frames, channels)), SR)
        paths.append(path)
        length_ms = frames * 1000 / SR
        a = data.draw(st.floats(0, length_ms - 2))
        ops = [{"id": "g", "type": data.draw(st.sampled_from(["gain", "trim", "crop", "fade_in", "fade_out"])),
                "params": {"start_ms": a, "end_ms": data.draw(st.floats(a + 1, length_ms))}}]
        if ops[0]["type"] == "gain":
            ops[0]["params"]["level"] = data.draw(st.floats(0, 4))
        stems.append({"file_index": i, "volume": data.draw(st.floats(0, 2)), "pan": data.draw(st.floats(-1, 1)),
                      "solo": data.draw(st.booleans()), "operations": ops})
    doc = {"version": 1, "stems": stems, "master": {"gain": data.draw(st.floats(0, 4))}}
    ahead, rendered, _ = counts(doc, paths)
    assert ahead == rendered
