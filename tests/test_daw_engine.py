"""The browser DAW's audio engine (ui/daw/static/engine.js) in headless Chromium, against the server mixdown.

1. Preview equals export: the same manifest rendered by ``core.daw.mixdown.Mixdown`` and by the engine's
   ``renderOffline`` (the live graph in an OfflineAudioContext) differ by far less than -60 dB.
2. Sample lock: a click at one sample in two panned, gained stems lands at one output sample; the engine's
   envelope equals ``StemEnvelope.block`` to float32 precision.
3. Streaming: a real AudioContext plays windows of a fake PCM source; lanes share every start time through
   play, seek, loop and edits, the playhead follows the audio clock, memory stays bounded, stop cleans up.

No StemForge server: a tiny http.server serves the module and an empty page (modules need a URL).
"""

from __future__ import annotations

import base64
import http.server
import random
import re
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import Page, sync_playwright

from core.daw.envelopes import StemEnvelope
from core.daw.manifest import parse_manifest
from core.daw.mixdown import Mixdown, stem_audio
from tests.browser import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "ui" / "daw" / "static" / "engine.js"
SR = 44100
HARNESS = b"""<!doctype html><meta charset="utf-8"><title>engine harness</title>
<script type="module">
import * as E from "/daw-static/engine.js";
const b64 = (s) => { const t = atob(s); const u = new Uint8Array(t.length);
  for (let i = 0; i < t.length; i++) u[i] = t.charCodeAt(i); return new Float32Array(u.buffer); };
const toB64 = (f) => { const u = new Uint8Array(f.buffer, f.byteOffset, f.byteLength); let s = "";
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
  return btoa(s); };
window.E = E; window.b64 = b64; window.toB64 = toB64;
window.renderB64 = async (manifest, stems, opts) => {
  const buf = await E.renderOffline(manifest, stems.map((s) => ({id: s.id, sampleRate: s.sampleRate,
    channels: s.channels.map(b64)})), opts);
  const n = buf.length, out = new Float32Array(2 * n), l = buf.getChannelData(0), r = buf.getChannelData(1);
  for (let i = 0; i < n; i++) { out[2 * i] = l[i]; out[2 * i + 1] = r[i]; }
  return {frames: n, channels: buf.numberOfChannels, sampleRate: buf.sampleRate, data: toB64(out)};
};
window.harnessReady = true;
</script>"""


PCM_REQUESTS: list[str] = []
PCM_TOTAL = 5 * SR


def _pcm(path: str) -> tuple[bytes, dict[str, str]] | None:
    """A stand-in for ``GET /api/{stems,tracks}/{id}/pcm?start=&frames=&format=f32``: a 0.25 sine, stereo."""
    parts = urllib.parse.urlsplit(path)
    if not re.fullmatch(r"/api/(stems|tracks)/[^/]+/pcm", parts.path):
        return None
    PCM_REQUESTS.append(path)
    query = urllib.parse.parse_qs(parts.query)
    start, frames = int(query["start"][0]), int(query["frames"][0])
    assert query["format"] == ["f32"]
    n = max(0, min(frames, PCM_TOTAL - start))
    wave = 0.25 * np.sin(2 * np.pi * 440 * (start + np.arange(n)) / SR)
    body = np.repeat(wave[:, None], 2, axis=1).astype("<f4").tobytes()
    return body, {"X-Sample-Rate": str(SR), "X-Channels": "2", "X-Sample-Format": "f32le",
                  "X-Start-Frame": str(start), "X-Frames": str(n), "X-Total-Frames": str(PCM_TOTAL)}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        headers: dict[str, str] = {}
        pcm = _pcm(self.path)
        if pcm is not None:
            body, headers = pcm
            kind = "application/octet-stream"
        elif self.path == "/daw-static/engine.js":
            body, kind = ENGINE.read_bytes(), "text/javascript"
        elif self.path == "/":
            body, kind = HARNESS, "text/html"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is missing: `make test` installs it (tests/scripts/browser.sh)"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, headless=True,
                                        args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
            try:
                pg = browser.new_page()
                errors: list[str] = []
                pg.on("pageerror", lambda exc: errors.append(str(exc)))
                pg.goto(f"http://127.0.0.1:{server.server_address[1]}/")
                pg.wait_for_function("window.harnessReady === true", timeout=10_000)
                yield pg
                assert not errors, errors
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def render_in_browser(page: Page, manifest: dict[str, Any], stems: list[tuple[str, np.ndarray]],
                      **opts: Any) -> np.ndarray:
    """``renderOffline`` of ``manifest`` over ``stems`` ((id, (frames, channels) float32)): (n, 2) float32."""
    payload = [{"id": sid, "sampleRate": SR, "channels": [b64(data[:, c]) for c in range(data.shape[1])]}
               for sid, data in stems]
    res = page.evaluate("([m, s, o]) => window.renderB64(m, s, o)", [manifest, payload, opts])
    assert res["channels"] == 2 and res["sampleRate"] == SR
    return np.frombuffer(base64.b64decode(res["data"]), dtype="<f4").reshape(-1, 2)


def render_on_server(tmp: Path, manifest: Any, stems: list[tuple[str, np.ndarray]]) -> np.ndarray:
    audios = []
    for sid, data in stems:
        path = tmp / f"{sid}.wav"
        sf.write(path, data if data.shape[1] > 1 else data[:, 0], SR, subtype="FLOAT")
        audios.append(stem_audio(path))
    return np.concatenate(list(Mixdown(manifest, audios, block_frames=30_000).render()))


def residual_db(preview: np.ndarray, export: np.ndarray) -> float:
    err = float(np.sum((preview.astype(np.float64) - export) ** 2))
    ref = float(np.sum(export.astype(np.float64) ** 2))
    assert ref > 0
    return 10 * np.log10(max(err, 1e-300) / ref)


def op(kind: str, n: int, **params: Any) -> dict[str, Any]:
    return {"id": f"{kind}-{n}", "type": kind, "params": params}


# --- 1. preview equals export ---------------------------------------------------------------------------------

def _stems() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    t3 = np.arange(3 * SR) / SR
    a = np.stack([0.2 * rng.standard_normal(t3.size) + 0.3 * np.sin(2 * np.pi * 440 * t3),
                  0.15 * rng.standard_normal(t3.size) + 0.3 * np.sin(2 * np.pi * 660 * t3)], axis=1)
    t25 = np.arange(int(2.5 * SR)) / SR
    b = (0.5 * np.sin(2 * np.pi * 220 * t25) + 0.1 * rng.standard_normal(t25.size))[:, None]
    t2 = np.arange(2 * SR) / SR
    c = np.stack([0.05 * rng.standard_normal(t2.size), 0.2 * np.sin(2 * np.pi * 330 * t2)], axis=1)
    c[30_001] = (0.9, -0.8)
    d = 0.3 * rng.standard_normal((int(2.7 * SR), 2))
    ids = [str(uuid.UUID(int=i + 1)) for i in range(4)]
    return [(ids[0], a.astype(np.float32)), (ids[1], b.astype(np.float32)), (ids[2], c.astype(np.float32)),
            (ids[3], d.astype(np.float32))]


def _manifests(ids: list[str]) -> list[dict[str, Any]]:
    ops_a = [op("fade_in", 1, start_ms=0, end_ms=400, curve="equal_power"),
             op("trim", 2, start_ms=900, end_ms=1100.5),
             op("gain", 3, start_ms=1300, end_ms=1900, level=2.5),
             op("split", 4, position_ms=1500),
             op("fade_out", 5, start_ms=2400, end_ms=2990, curve="exponential")]
    ops_b = [op("crop", 1, start_ms=100, end_ms=2300),
             op("fade_in", 2, start_ms=150, end_ms=700.25, curve="s_curve"),
             op("mute", 3, start_ms=1000, end_ms=1234),
             op("fade_out", 4, start_ms=1800, end_ms=2200, curve="logarithmic"),
             op("gain", 5, start_ms=600, end_ms=1200, level=0.0)]
    ops_c = [op("gain", 1, start_ms=200, end_ms=800, level=0.2),
             op("fade_in", 2, start_ms=0, end_ms=100, curve="linear"),
             op("fade_out", 3, start_ms=1500, end_ms=2000, curve="linear"),
             op("trim", 4, start_ms=690, end_ms=700)]
    plain = {"version": 1, "range": {"start_ms": 250, "end_ms": 2810.7}, "master": {"gain": 0.7}, "stems": [
        {"stem_id": ids[0], "volume": 0.8, "pan": -1, "operations": ops_a},
        {"stem_id": ids[1], "volume": 1.3, "pan": -0.3, "operations": ops_b},
        {"stem_id": ids[2], "volume": 0.6, "pan": 0.7, "operations": ops_c},
        {"stem_id": ids[3], "volume": 1.0, "muted": True}]}
    soloed = {"version": 1, "master": {"gain": 1.3}, "stems": [
        {"stem_id": ids[0], "volume": 1.1, "pan": 0.7, "solo": True, "operations": ops_a},
        {"stem_id": ids[1], "volume": 0.9, "pan": -0.3, "solo": True, "operations": ops_b},
        {"stem_id": ids[2], "volume": 1.0, "pan": -1, "solo": True, "muted": True},
        {"stem_id": ids[3], "volume": 1.0, "pan": 0.2}]}
    return [plain, soloed]


@pytest.mark.parametrize("which", [0, 1], ids=["ranged-mute", "solo"])
def test_preview_equals_export(page: Page, tmp_path: Path, which: int) -> None:
    stems = _stems()
    manifest = parse_manifest(_manifests([sid for sid, _ in stems])[which])
    export = render_on_server(tmp_path, manifest, stems)
    assert float(np.abs(export).max()) > 0.1
    for window in (4, 0.37):  # one window, and many (their seams are checked too)
        preview = render_in_browser(page, manifest.dump(), stems, windowSeconds=window)
        assert preview.shape == export.shape
        db = residual_db(preview, export)
        print(f"manifest {which}, windows of {window} s: residual {db:.1f} dB, "
              f"max |diff| {float(np.abs(preview - export).max()):.2e}")
        assert db <= -60, db
        assert db <= -100, f"float32-rounding agreement expected, got {db:.1f} dB"


# --- 2. sample lock and the envelope ------------------------------------------------------------------------

def test_click_lands_on_one_sample(page: Page) -> None:
    ids = [str(uuid.UUID(int=i + 11)) for i in range(2)]
    window = 0.25  # windows of 11025 frames: the clicks sit on a window's first and last sample and inside one
    clicks = [11025, 22049, 30001]
    a = np.zeros((2 * SR, 2), np.float32)
    b = np.zeros((2 * SR, 1), np.float32)
    for n in clicks:
        a[n] = (0.5, 0.25)
        b[n] = 0.5
    manifest = {"version": 1, "master": {"gain": 0.9}, "stems": [
        {"stem_id": ids[0], "volume": 0.7, "pan": -0.5},
        {"stem_id": ids[1], "volume": 1.5, "pan": 0.8}]}
    out = render_in_browser(page, manifest, [(ids[0], a), (ids[1], b)], windowSeconds=window, startFrame=100)
    hot = np.flatnonzero(np.abs(out).max(axis=1) > 1e-6)
    assert hot.tolist() == [n - 100 for n in clicks]
    # the expected value at a click, from the contract (pan law), float32 precision
    def pan(p: float, left: float, right: float) -> tuple[float, float]:
        x = p + 1 if p <= 0 else p
        gl, gr = np.cos(x * np.pi / 2), np.sin(x * np.pi / 2)
        return (left + right * gl, right * gr) if p <= 0 else (left * gl, right + left * gr)
    la, ra = pan(-0.5, 0.35, 0.175)
    lb, rb = pan(0.8, 0.75, 0.75)
    expected = 0.9 * np.array([la + lb, ra + rb])
    for n in clicks:
        np.testing.assert_allclose(out[n - 100], expected, rtol=1e-6)


def test_envelope_block_equals_server(page: Page) -> None:
    rng = random.Random(1234)
    sr = 44100
    kinds = ["trim", "mute", "crop", "gain", "fade_in", "fade_out", "split"]
    curves = ["linear", "equal_power", "s_curve", "exponential", "logarithmic"]
    cases = []
    for case in range(12):
        ops = []
        for n in range(rng.randint(1, 6)):
            kind = rng.choice(kinds)
            if kind == "split":
                ops.append(op(kind, n, position_ms=round(rng.uniform(0, 2000), 3)))
                continue
            s = round(rng.uniform(0, 1800), rng.choice([0, 2, 6]))
            e = s + round(rng.uniform(0.02, 600), rng.choice([0, 3, 6]))
            params: dict[str, Any] = {"start_ms": s, "end_ms": e}
            if kind == "gain":
                params["level"] = round(rng.uniform(0, 4), 4)
            if kind.startswith("fade"):
                params["curve"] = rng.choice(curves)
            ops.append(op(kind, n, **params))
        first = rng.choice([0, rng.randint(0, 60_000)])
        cases.append({"ops": ops, "first": first, "count": rng.choice([1, 7, 4096, 50_000]) if case else 90_000})
    got = page.evaluate("""(cases) => cases.map((c) => toB64(E.envelopeBlock(c.ops, c.first, c.count, 44100)))""",
                        cases)
    manifest = parse_manifest({"version": 1, "stems": [
        {"file_index": i, "operations": c["ops"]} for i, c in enumerate(cases)]})
    for case, stem, data in zip(cases, manifest.stems, got, strict=True):
        js = np.frombuffer(base64.b64decode(data), dtype="<f4")
        py = StemEnvelope(stem.operations, sr).block(case["first"], case["count"])
        py32 = np.full(case["count"], py, np.float32) if isinstance(py, float) else py.astype(np.float32)
        assert js.shape == py32.shape
        np.testing.assert_allclose(js, py32, rtol=2e-7, atol=1e-7)


# --- 3. streaming in a real AudioContext --------------------------------------------------------------------

STREAM_JS = """
async () => {
  const sr = 44100, seconds = 20, total = sr * seconds;
  const stems = [{id: "a", frames: total, sampleRate: sr, channels: 2},
                 {id: "b", frames: total, sampleRate: sr, channels: 1},
                 {id: "c", frames: total - 12345, sampleRate: sr, channels: 2}];
  const original = {id: "trk", frames: total, sampleRate: sr, channels: 2};
  const freq = {a: 220, b: 330, c: 550, trk: 110};
  const fetches = [];
  const fetchWindow = async (id, start, frames, how) => {
    fetches.push([id, start, frames]);
    await new Promise((r) => setTimeout(r, 15));
    if ((id === "trk") !== (how.kind === "original")) throw new Error(`kind ${how.kind} for ${id}`);
    const stem = id === "trk" ? original : stems.find((s) => s.id === id);
    const n = Math.min(frames, stem.frames - start), ch = stem.channels;
    const data = new Float32Array(n * ch);
    for (let i = 0; i < n; i++) for (let c = 0; c < ch; c++)
      data[i * ch + c] = 0.2 * Math.sin(2 * Math.PI * freq[id] * (start + i) / sr);
    return {data, frames: n, channels: ch};
  };
  const windowSeconds = 0.5, aheadSeconds = 1.5;
  const engine = new E.DawEngine({stems, fetchWindow, original, windowSeconds, aheadSeconds});
  const events = {time: 0, buffering: 0, ended: 0, error: []};
  engine.on("time", () => events.time++);
  engine.on("buffering", () => events.buffering++);
  engine.on("error", (e) => events.error.push(String(e)));
  const manifest = {version: 1, master: {gain: 0.8}, stems: [
    {stem_id: "a", volume: 0.9, pan: -0.4}, {stem_id: "b", pan: 0.6}, {stem_id: "c", volume: 0.5}]};
  engine.setManifest(manifest);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const windowBytes = windowSeconds * sr * 2 * 4;
  let maxBytes = 0;
  const problems = [];
  const check = (label) => {
    const st = engine.state();
    maxBytes = Math.max(maxBytes, st.bytesHeld);
    const byFrame = new Map();
    for (const [id, t, frame] of st.laneStarts) {
      if (!byFrame.has(frame)) byFrame.set(frame, new Map());
      byFrame.get(frame).set(id, t);
    }
    for (const [frame, lanes] of byFrame) {
      const times = new Set(lanes.values());
      if (times.size !== 1) problems.push(`${label}: lanes of window ${frame} start apart: ${[...lanes]}`);
      const want = frame < total - 12345 ? 4 : 3;
      if (lanes.size !== want) problems.push(`${label}: window ${frame} has ${lanes.size} lanes`);
    }
    // back to back: each window starts (in context frames) where the previous one ended
    for (let i = 1; i < st.windows.length; i++) {
      const p = st.windows[i - 1], w = st.windows[i];
      if (w.contextFrame !== p.contextFrame + p.frames) problems.push(`${label}: gap/overlap before window ${w.frame}`);
      if (Math.abs(w.contextFrame / sr - w.contextTime) > 1e-9) problems.push(`${label}: time of ${w.frame}`);
    }
    return st;
  };
  const out = {};
  const t0 = performance.now();
  await engine.play(0);
  out.startMs = performance.now() - t0;
  out.playing = engine.playing;
  const c0 = engine.ctx.currentTime;
  const startState = check("start");
  out.contextStart = startState.contextStart;
  await sleep(1100);
  const c1 = engine.ctx.currentTime;
  out.ctxAdvance = c1 - c0;
  out.pos1 = engine.currentTime;
  out.expected1 = c1 - startState.contextStart;
  check("play");
  let peak = 0;
  for (let i = 0; i < 5; i++) {
    const lv = engine.levels();
    peak = Math.max(peak, lv.master, lv.lanes.a, lv.lanes.b);
    await sleep(30);
  }
  out.levelPeak = peak;
  // A/B: the original at the same position, then back
  const master = () => { let p = 0; for (let i = 0; i < 3; i++) p = Math.max(p, engine.levels().master); return p; };
  out.remixLevel = master();
  const beforeAB = engine.currentTime;
  engine.abMode = "original";
  await sleep(150);
  out.originalLevel = master();
  out.abDrift = engine.currentTime - beforeAB;
  engine.abMode = "remix";
  await sleep(100);
  out.remixAgain = master();
  engine.seek(10);
  await sleep(600);
  out.pos2 = engine.currentTime;
  check("seek");
  // an edit heard at once: a gain over the playhead re-renders the scheduled windows, lanes stay locked
  const levelB = () => { let p = 0; for (let i = 0; i < 3; i++) p = Math.max(p, engine.levels().lanes.b); return p; };
  out.levelBefore = levelB();
  const pos = engine.currentTime * 1000;
  engine.setManifest({...manifest, stems: manifest.stems.map((s) => s.stem_id === "b"
    ? {...s, operations: [{id: "g", type: "gain", params: {start_ms: pos, end_ms: pos + 3000, level: 0.25}}]} : s)});
  check("edit");
  await sleep(250);
  out.levelAfter = levelB();
  check("after edit");
  engine.setLoop(12, 12.6);
  engine.loop = true;
  engine.seek(12.2);
  const seen = [];
  for (let i = 0; i < 25; i++) { await sleep(60); seen.push(engine.currentTime); check("loop"); }
  out.loopSeen = seen;
  const st = engine.state();
  out.loopWindows = st.windows.map((w) => w.frame);
  engine.loop = false;
  await sleep(200);
  check("unloop");
  out.afterUnloop = engine.currentTime;
  engine.pause();
  out.paused = [engine.playing, engine.currentTime];
  out.pausedBytes = engine.state().bytesHeld;
  await engine.play();
  await sleep(200);
  check("resume");
  out.resumed = engine.currentTime;
  engine.stop();
  const end = engine.state();
  out.stopped = {playing: engine.playing, bytes: end.bytesHeld, windows: end.windowsHeld,
                 lanes: end.laneStarts.length, time: engine.currentTime};
  // near the end: plays out and reports "ended"
  const ended = new Promise((r) => engine.on("ended", r));
  await engine.play(19.6);
  out.endedAt = await Promise.race([ended, sleep(3000).then(() => "timeout")]);
  out.afterEnd = {playing: engine.playing, time: engine.currentTime, bytes: engine.state().bytesHeld};
  engine.dispose();
  out.maxBytes = maxBytes;
  out.bound = Math.ceil(aheadSeconds / windowSeconds + 3) * (stems.length + 1) * windowBytes * 2;
  out.problems = problems;
  out.events = events;
  out.fetches = fetches.length;
  return out;
}
"""


def test_streaming_engine(page: Page) -> None:
    out = page.evaluate(STREAM_JS)
    print({k: v for k, v in out.items() if k != "loopSeen"})
    assert not out["problems"], out["problems"][:5]
    assert not out["events"]["error"], out["events"]["error"]
    assert out["playing"] and out["startMs"] < 2000
    assert out["ctxAdvance"] > 0.8, "the AudioContext clock does not run"
    # the playhead is the audio clock: position = context time since the start (at most a quantum apart)
    assert abs(out["pos1"] - out["expected1"]) < 0.01, out
    assert 0.7 < out["pos1"] < 3
    assert out["levelPeak"] > 0.05
    # the edit is heard within 250 ms: lane b at a quarter of its level
    assert abs(out["levelAfter"] / out["levelBefore"] - 0.25) < 0.03, (out["levelBefore"], out["levelAfter"])
    assert 10.0 <= out["pos2"] < 11.5
    # A/B switches in place: the original (a 110 Hz sine at 0.2, unpanned) replaces the remix at once
    assert abs(out["originalLevel"] - 0.2) < 0.01 and out["remixLevel"] > 0.3 and out["remixAgain"] > 0.3, out
    assert 0.1 < out["abDrift"] < 1
    seen = out["loopSeen"]
    assert all(12.0 - 1e-9 <= t < 12.6 + 1e-9 for t in seen), seen
    assert any(b < a for a, b in zip(seen, seen[1:], strict=False)), f"never wrapped: {seen}"
    assert round(12 * SR) in out["loopWindows"]
    assert out["afterUnloop"] > 12.0
    assert out["paused"][0] is False
    assert out["resumed"] > out["paused"][1]
    assert out["maxBytes"] < out["bound"], out
    assert out["stopped"] == {"playing": False, "bytes": 0, "windows": 0, "lanes": 0, "time": 0}
    assert out["endedAt"] != "timeout" and abs(out["endedAt"] - 20.0) < 1e-6
    assert out["afterEnd"]["playing"] is False and out["afterEnd"]["bytes"] == 0
    assert out["events"]["time"] > 20


def test_default_fetch_reads_the_pcm_route(page: Page) -> None:
    """Without ``fetchWindow`` the engine reads ``/api/stems/{id}/pcm`` (and ``/api/tracks/{id}/pcm``)."""
    PCM_REQUESTS.clear()
    out = page.evaluate("""async (total) => {
      const engine = new E.DawEngine({stems: [{id: "s1", frames: total, sampleRate: 44100, channels: 2}],
                                      original: {id: "t1", frames: total, sampleRate: 44100, channels: 2},
                                      windowSeconds: 1, aheadSeconds: 2});
      const errors = [];
      engine.on("error", (e) => errors.push(String(e)));
      await engine.play(4.5);
      await new Promise((r) => setTimeout(r, 300));
      let peak = 0;
      for (let i = 0; i < 3; i++) peak = Math.max(peak, engine.levels().master);
      const lanes = engine.state().laneStarts.map((l) => l[0]);
      engine.abMode = "original";
      await new Promise((r) => setTimeout(r, 100));
      const original = engine.levels().master;
      engine.dispose();
      return {errors, peak, lanes, original};
    }""", PCM_TOTAL)
    assert not out["errors"], out["errors"]
    assert sorted(set(out["lanes"])) == ["s1", "t1"]
    assert 0.24 < out["peak"] < 0.26 and 0.24 < out["original"] < 0.26, out
    assert f"/api/stems/s1/pcm?start={4 * SR}&frames={SR}&format=f32" in PCM_REQUESTS, PCM_REQUESTS
    assert f"/api/tracks/t1/pcm?start={4 * SR}&frames={SR}&format=f32" in PCM_REQUESTS, PCM_REQUESTS
    assert not any("start=220500" in r for r in PCM_REQUESTS)  # nothing past the end is asked for


def test_slow_source_buffers_and_stays_locked(page: Page) -> None:
    """PCM arriving slower than real time: the engine waits ("buffering"), then starts every lane of the late
    window at one new context time; the playhead holds still meanwhile and never runs backwards."""
    out = page.evaluate("""async () => {
      const sr = 44100, total = 10 * sr;
      const stems = ["a", "b"].map((id) => ({id, frames: total, sampleRate: sr, channels: 1}));
      let calls = 0;
      const fetchWindow = async (id, start, frames) => {
        await new Promise((r) => setTimeout(r, ++calls > 4 ? 450 : 5));
        return {data: new Float32Array(frames).fill(0.1), frames, channels: 1};
      };
      const engine = new E.DawEngine({stems, fetchWindow, windowSeconds: 0.25, aheadSeconds: 0.5,
                                      maxFetches: 2});
      const buffering = [];
      engine.on("buffering", (b) => buffering.push(b));
      await engine.play(0);
      const times = [], apart = [];
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 50));
        times.push(engine.currentTime);
        const starts = new Map();
        for (const [id, t, frame] of engine.state().laneStarts) {
          if (starts.has(frame) && starts.get(frame) !== t) apart.push(frame);
          starts.set(frame, t);
        }
      }
      engine.dispose();
      return {buffering, times, apart};
    }""")
    assert out["buffering"][:2] == [True, False], out["buffering"]
    assert not out["apart"]
    times = out["times"]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False)), times
    assert times[-1] > 0.5
