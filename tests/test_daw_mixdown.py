"""The server mixdown against the DAW contract, sample by sample.

The mixdown computes in float32 (as the browser's Web Audio graph does), so values are compared to float32
precision. Stems are float WAVs (read back exactly) at 1000 Hz, so a millisecond is a sample and the 5 ms edge ramp
is five samples: expected values are written out by hand or from the contract's formulas. A property test
renders random manifests block by block and compares them with a whole-array reference written plainly
here, from the contract, not from the product's code.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.daw.manifest import ManifestInvalid, check_timeline, parse_manifest
from core.daw.mixdown import Mixdown, StemAudio, stem_audio

SR = 1000


def write_stem(path: Path, data: np.ndarray, sr: int = SR) -> StemAudio:
    sf.write(path, data.astype(np.float32), sr, subtype="FLOAT")
    return stem_audio(path)


def const(tmp: Path, name: str, values: tuple[float, ...], frames: int = 400, sr: int = SR) -> StemAudio:
    data = np.tile(np.array(values, dtype=np.float32), (frames, 1))
    return write_stem(tmp / f"{name}.wav", data, sr)


def manifest(*stems: dict[str, Any], **top: Any) -> Any:
    doc = {"version": 1, "stems": [{"file_index": i, **s} for i, s in enumerate(stems)], **top}
    return parse_manifest(doc)


def mix(m: Any, audios: list[StemAudio], block_frames: int = 64) -> np.ndarray:
    mixdown = Mixdown(m, audios, block_frames=block_frames)
    blocks = list(mixdown.render())
    return np.concatenate(blocks) if blocks else np.zeros((0, 2))


def op(kind: str, **params: Any) -> dict[str, Any]:
    return {"id": f"op-{kind}", "type": kind, "params": params}


def left(out: np.ndarray, *frames: int) -> list[float]:
    """Left-channel samples, to the precision of float32 (the mixdown's arithmetic, like Web Audio's)."""
    return [round(float(out[f, 0]), 6) for f in frames]


# --- each operation and curve --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["trim", "mute"])
def test_trim_and_mute_silence_the_span_with_5ms_ramps_outside(tmp_path: Path, kind: str) -> None:
    audio = const(tmp_path, "a", (0.5, 0.5))
    out = mix(manifest({"operations": [op(kind, start_ms=100, end_ms=200)]}), [audio])
    assert left(out, 0, 94, 95, 96, 97, 98, 99, 100, 150, 200) == [0.5, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1, 0, 0, 0]
    assert left(out, 201, 202, 203, 204, 205, 206, 399) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5]
    assert np.array_equal(out[:, 0], out[:, 1])


def test_crop_keeps_the_span_with_ramps_inside_the_edges(tmp_path: Path) -> None:
    audio = const(tmp_path, "a", (0.5, 0.5))
    out = mix(manifest({"operations": [op("crop", start_ms=100, end_ms=200)]}), [audio])
    assert left(out, 0, 99, 100, 101, 102, 103, 104, 105, 150, 195) == [0, 0, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5]
    assert left(out, 196, 197, 198, 199, 200, 201, 399) == [0.4, 0.3, 0.2, 0.1, 0, 0, 0]


def test_gain_sets_the_level_inside_and_ramps_from_and_to_one_outside(tmp_path: Path) -> None:
    audio = const(tmp_path, "a", (0.5, 0.5))
    out = mix(manifest({"operations": [op("gain", start_ms=100, end_ms=200, level=0.2)]}), [audio])
    # 0.5 * (1 + (0.2 - 1) * w), w going 0 -> 1 over frames 95..100
    assert left(out, 94, 95, 96, 97, 98, 99, 100, 150, 200) == [0.5, 0.5, 0.42, 0.34, 0.26, 0.18, 0.1, 0.1, 0.1]
    assert left(out, 201, 203, 205, 206) == [0.18, 0.34, 0.5, 0.5]
    loud = mix(manifest({"operations": [op("gain", start_ms=100, end_ms=200, level=4)]}), [audio])
    assert left(loud, 150) == [2.0]  # beyond full scale in float; clipped only when written


CURVES = {
    "linear": lambda u: u,
    "equal_power": lambda u: math.sin(u * math.pi / 2),
    "s_curve": lambda u: (1 - math.cos(math.pi * u)) / 2,
    "exponential": lambda u: (2 ** (10 * u) - 1) / 1023,
    "logarithmic": lambda u: math.log10(1 + 9 * u),
}


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_fade_in_and_fade_out_follow_each_curve(tmp_path: Path, curve: str) -> None:
    audio = const(tmp_path, "a", (1.0, 1.0))
    c = CURVES[curve]
    fade_in = mix(manifest({"operations": [op("fade_in", start_ms=100, end_ms=200, curve=curve)]}), [audio])
    expected = [0.0] * 100 + [c((n - 100) / 100) for n in range(100, 201)] + [1.0] * 199
    assert np.allclose(fade_in[:, 0], expected, atol=1e-7, rtol=1e-6)
    fade_out = mix(manifest({"operations": [op("fade_out", start_ms=100, end_ms=200, curve=curve)]}), [audio])
    expected = [1.0] * 100 + [c(1 - (n - 100) / 100) for n in range(100, 201)] + [0.0] * 199
    assert np.allclose(fade_out[:, 0], expected, atol=1e-7, rtol=1e-6)


def test_the_default_curve_is_linear_and_split_changes_nothing(tmp_path: Path) -> None:
    audio = const(tmp_path, "a", (1.0, -1.0))
    out = mix(manifest({"operations": [op("fade_in", start_ms=0, end_ms=100), op("split", position_ms=50)]}), [audio])
    assert left(out, 0, 25, 50, 100, 300) == [0, 0.25, 0.5, 1, 1]
    plain = mix(manifest({"operations": [op("split", position_ms=50)]}), [audio])
    assert np.array_equal(plain, np.tile([1.0, -1.0], (400, 1)))


def test_overlapping_operations_multiply_in_any_order(tmp_path: Path) -> None:
    audio = const(tmp_path, "a", (1.0, 1.0))
    ops = [op("gain", start_ms=0, end_ms=300, level=0.5), op("fade_in", start_ms=0, end_ms=100),
           op("trim", start_ms=150, end_ms=160)]
    out = mix(manifest({"operations": ops}), [audio])
    assert left(out, 0, 50, 100, 144, 145, 146, 150, 161, 165, 200) == [0, 0.25, 0.5, 0.5, 0.5, 0.4, 0, 0.1, 0.5, 0.5]
    reordered = mix(manifest({"operations": ops[::-1]}), [audio])
    assert np.array_equal(out, reordered)


# --- audibility, volume, pan, master ---------------------------------------------------------------------------


def test_mute_beats_solo_and_several_soloed_stems_sound_together(tmp_path: Path) -> None:
    # values exact in float32, so sums are exact too
    a, b, c = (const(tmp_path, n, (v, v)) for n, v in (("a", 0.5), ("b", 0.125), ("c", 0.0078125)))
    assert left(mix(manifest({"solo": True, "muted": True}, {"solo": True}, {}), [a, b, c]), 0) == [0.125]
    assert left(mix(manifest({"solo": True}, {"solo": True}, {}), [a, b, c]), 0) == [0.625]
    assert mix(manifest({"muted": True}, {}, {}), [a, b, c])[0, 0] == 0.1328125
    assert mix(manifest({}, {}, {}), [a, b, c])[0, 0] == 0.6328125
    silent = mix(manifest({"muted": True}, {"muted": True}, {"muted": True}), [a, b, c])
    assert silent.shape == (400, 2) and not silent.any()


@pytest.mark.parametrize("volume", [0.0, 0.5, 2.0])
def test_volume_is_a_linear_gain(tmp_path: Path, volume: float) -> None:
    audio = const(tmp_path, "a", (0.25, -0.5))
    out = mix(manifest({"volume": volume}), [audio])
    assert out[7].tolist() == [0.25 * volume, -0.5 * volume]


def stereo_panner(pan: float, in_left: float, in_right: float) -> tuple[float, float]:
    """The Web Audio StereoPannerNode for stereo input, as the contract writes it."""
    x = pan + 1 if pan <= 0 else pan
    g_left, g_right = math.cos(x * math.pi / 2), math.sin(x * math.pi / 2)
    if pan <= 0:
        return in_left + in_right * g_left, in_right * g_right
    return in_left * g_left, in_right + in_left * g_right


@pytest.mark.parametrize("pan", [-1.0, -0.3, 0.0, 0.7, 1.0])
def test_pan_follows_the_stereo_panner_on_stereo_and_mono(tmp_path: Path, pan: float) -> None:
    stereo = const(tmp_path, "s", (0.375, -0.25))
    out = mix(manifest({"pan": pan, "volume": 0.5}), [stereo])
    assert np.allclose(out[3], stereo_panner(pan, 0.1875, -0.125), atol=1e-7, rtol=1e-6)
    mono = const(tmp_path, "m", (0.5,))
    out = mix(manifest({"pan": pan}), [mono])
    assert np.allclose(out[3], stereo_panner(pan, 0.5, 0.5), atol=1e-7, rtol=1e-6)
    if pan == 0:
        assert out[3].tolist() == [0.5, 0.5]  # passes unchanged


def test_master_gain_scales_the_sum(tmp_path: Path) -> None:
    a, b = const(tmp_path, "a", (0.125, 0.25)), const(tmp_path, "b", (0.0625, 0.0625))
    out = mix(manifest({}, {}, master={"gain": 3.0}), [a, b])
    assert out[0].tolist() == [0.5625, 0.9375]


def test_range_renders_only_its_frames(tmp_path: Path) -> None:
    ramp = np.stack([np.arange(400) / 1000, -np.arange(400) / 1000], axis=1)
    audio = write_stem(tmp_path / "r.wav", ramp)
    out = mix(manifest({}, range={"start_ms": 100, "end_ms": 250}), [audio])
    assert out.shape == (150, 2)
    assert np.allclose(out, ramp[100:250].astype(np.float32), atol=0)
    tail = mix(manifest({}, range={"start_ms": 390}), [audio])
    assert tail.shape == (10, 2)


# --- the WAV: 24-bit, header, clipping -------------------------------------------------------------------------


def render_wav(m: Any, audios: list[StemAudio], block_frames: int = 64) -> tuple[bytes, Mixdown]:
    mixdown = Mixdown(m, audios, block_frames=block_frames)
    return b"".join(mixdown.wav_chunks()), mixdown


def test_the_wav_is_24_bit_with_an_exact_header_and_clipped_samples_counted(tmp_path: Path) -> None:
    a, b = const(tmp_path, "a", (0.7, 0.25)), const(tmp_path, "b", (0.7, -0.5))
    wav, mixdown = render_wav(manifest({}, {}, range={"start_ms": 0, "end_ms": 300}), [a, b])
    assert len(wav) == mixdown.wav_size() == 44 + 300 * 2 * 3
    riff, size, wave = struct.unpack("<4sI4s", wav[:12])
    assert (riff, wave, size) == (b"RIFF", b"WAVE", len(wav) - 8)
    data, sr = sf.read(io.BytesIO(wav), dtype="int32")
    info = sf.info(io.BytesIO(wav))
    assert (sr, info.channels, info.subtype, info.frames) == (SR, 2, "PCM_24", 300)
    # left 1.4: clipped to the largest 24-bit value; right -0.25 exactly
    assert set((data[:, 0] >> 8).tolist()) == {(1 << 23) - 1} and set((data[:, 1] >> 8).tolist()) == {-(1 << 21)}
    assert mixdown.clipped == 300  # one channel of every frame is beyond full scale
    quiet, mixdown = render_wav(manifest({}, {"muted": True}), [a, b])
    assert mixdown.clipped == 0
    full = const(tmp_path, "f", (1.0, -1.0))  # exactly full scale: the largest values, not counted as clipped
    wav, mixdown = render_wav(manifest({}), [full])
    data, _ = sf.read(io.BytesIO(wav), dtype="int32")
    assert mixdown.clipped == 0 and (data[0] >> 8).tolist() == [(1 << 23) - 1, -(1 << 23)]


def test_stems_of_different_sample_rates_are_refused(tmp_path: Path) -> None:
    a, b = const(tmp_path, "a", (0.1, 0.1)), const(tmp_path, "b", (0.1, 0.1), sr=2000)
    with pytest.raises(Exception) as caught:
        Mixdown(manifest({}, {}), [a, b])
    assert getattr(caught.value, "status", None) == 422


def test_times_beyond_the_track_are_refused_with_their_paths(tmp_path: Path) -> None:
    m = manifest({"operations": [op("trim", start_ms=100, end_ms=200)]},
                 {"operations": [op("split", position_ms=10), op("fade_out", start_ms=300, end_ms=450)]},
                 range={"start_ms": 0, "end_ms": 500})
    with pytest.raises(ManifestInvalid) as caught:
        check_timeline(m, duration_ms=400.0)
    assert set(caught.value.details) == {"stems[1].operations[1].params.end_ms", "range.end_ms"}
    check_timeline(manifest({"operations": [op("fade_out", start_ms=300, end_ms=400.5)]}), duration_ms=400.0)


# --- property: block path == a plain whole-array reference ------------------------------------------------------

RAMP = 0.005


def reference_envelope(kind: str, p: dict[str, Any], t: np.ndarray) -> np.ndarray:
    if kind == "split":
        return np.ones_like(t)
    s, e = p["start_ms"] / 1000, p["end_ms"] / 1000
    if kind in ("trim", "mute", "gain"):
        env = np.ones_like(t)
        down = (t >= s - RAMP) & (t < s)
        env[down] = (s - t[down]) / RAMP
        env[(t >= s) & (t <= e)] = 0.0
        up = (t > e) & (t <= e + RAMP)
        env[up] = (t[up] - e) / RAMP
        return env if kind != "gain" else 1 + (p["level"] - 1) * (1 - env)
    if kind == "crop":
        inside = (t >= s) & (t <= e)
        env = np.zeros_like(t)
        env[inside] = np.minimum(np.minimum((t[inside] - s) / RAMP, 1.0), np.minimum((e - t[inside]) / RAMP, 1.0))
        return env
    curve = CURVES[p.get("curve", "linear")]
    u = (t - s) / (e - s)
    across = np.array([curve(x) for x in np.clip(u, 0, 1)])
    if kind == "fade_in":
        return np.where(t < s, 0.0, np.where(t > e, 1.0, across))
    return np.where(t < s, 1.0, np.where(t > e, 0.0, np.array([curve(1 - x) for x in np.clip(u, 0, 1)])))


def reference_mix(doc: dict[str, Any], signals: list[np.ndarray]) -> np.ndarray:
    frames = max(len(x) for x in signals)
    t = np.arange(frames) / SR
    soloing = any(s.get("solo") for s in doc["stems"])
    out = np.zeros((frames, 2))
    for stem, x in zip(doc["stems"], signals, strict=True):
        if stem.get("muted") or (soloing and not stem.get("solo")):
            continue
        x = np.pad(x.astype(np.float64), ((0, frames - len(x)), (0, 0)))
        if x.shape[1] == 1:
            x = np.repeat(x, 2, axis=1)
        g = stem.get("volume", 1.0) * np.prod([reference_envelope(o["type"], o["params"], t)
                                               for o in stem["operations"]] or [np.ones(frames)], axis=0)
        in_l, in_r = x[:, 0] * g, x[:, 1] * g
        pan = stem.get("pan", 0.0)
        if pan == 0:
            out[:, 0] += in_l
            out[:, 1] += in_r
            continue
        xx = pan + 1 if pan <= 0 else pan
        gl, gr = math.cos(xx * math.pi / 2), math.sin(xx * math.pi / 2)
        if pan <= 0:
            out[:, 0] += in_l + in_r * gl
            out[:, 1] += in_r * gr
        else:
            out[:, 0] += in_l * gl
            out[:, 1] += in_r + in_l * gr
    out *= doc.get("master", {}).get("gain", 1.0)
    start = round(doc.get("range", {}).get("start_ms", 0) * SR / 1000)
    end_ms = doc.get("range", {}).get("end_ms")
    end = frames if end_ms is None else min(frames, round(end_ms * SR / 1000))
    return out[start:end]


@st.composite
def operations(draw: st.DrawFn, length_ms: float) -> dict[str, Any]:
    kind = draw(st.sampled_from(["trim", "mute", "crop", "gain", "fade_in", "fade_out", "split"]))
    if kind == "split":
        return {"id": "s", "type": kind, "params": {"position_ms": draw(st.floats(0, length_ms))}}
    a = draw(st.floats(0, length_ms - 1))
    b = draw(st.floats(a + 0.5, length_ms))
    params: dict[str, Any] = {"start_ms": a, "end_ms": b}
    if kind == "gain":
        params["level"] = draw(st.floats(0, 4))
    if kind in ("fade_in", "fade_out"):
        params["curve"] = draw(st.sampled_from(sorted(CURVES)))
    return {"id": f"o{a}", "type": kind, "params": params}


@st.composite
def mixes(draw: st.DrawFn) -> tuple[dict[str, Any], list[np.ndarray]]:
    count = draw(st.integers(1, 4))
    signals, stems = [], []
    for index in range(count):
        frames = draw(st.integers(50, 300))
        channels = draw(st.sampled_from([1, 2]))
        seed = draw(st.integers(0, 2**16))
        signals.append(np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32))
        length_ms = frames * 1000 / SR
        stems.append({
            "file_index": index,
            "volume": draw(st.floats(0, 2)), "pan": draw(st.floats(-1, 1)),
            "muted": draw(st.booleans()), "solo": draw(st.booleans()),
            "operations": draw(st.lists(operations(length_ms), max_size=6)),
        })
    total_ms = max(len(x) for x in signals) * 1000 / SR
    start = draw(st.floats(0, total_ms - 5))
    end = draw(st.one_of(st.none(), st.floats(start + 2, total_ms)))
    doc = {"version": 1, "stems": stems, "master": {"gain": draw(st.floats(0, 4))},
           "range": {"start_ms": start, "end_ms": end}}
    return doc, signals


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mixes(), block=st.integers(1, 97))
def test_block_rendering_equals_a_whole_array_reference(tmp_path: Path, case: Any, block: int) -> None:
    doc, signals = case
    audios = [write_stem(tmp_path / f"p{i}.wav", x) for i, x in enumerate(signals)]
    got = mix(parse_manifest(doc), audios, block_frames=block)
    want = reference_mix(doc, signals)
    assert got.shape == want.shape
    assert np.allclose(got, want, atol=1e-6, rtol=1e-5)  # float32 arithmetic against a float64 reference
    whole = mix(parse_manifest(doc), audios, block_frames=1 << 20)
    assert np.array_equal(got, whole)  # the block size never changes a sample


def test_the_wav_is_the_same_for_any_number_of_threads_and_block_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    audios = [write_stem(tmp_path / f"t{i}.wav", rng.uniform(-0.7, 0.7, (997, 2))) for i in range(3)]
    doc = manifest({"pan": -0.4, "operations": [op("fade_in", start_ms=0, end_ms=300, curve="equal_power")]},
                   {"volume": 1.7, "operations": [op("gain", start_ms=100, end_ms=600, level=3)]},
                   {"pan": 0.9}, range={"start_ms": 13, "end_ms": 990})
    renders = set()
    for threads, block in ((1, 64), (3, 64), (2, 1000), (4, 7)):
        mixdown = Mixdown(doc, audios, block_frames=block)
        renders.add((b"".join(mixdown.wav_chunks(threads=threads)), mixdown.clipped))
    assert len(renders) == 1 and next(iter(renders))[1] > 0
