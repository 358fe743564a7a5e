"""A musician in Chromium, in the DAW editor: open a separated track from its page, see the lanes and their
waveforms, play (the audio clock moves), mute a lane, fade a selected range, undo, redo, reload (the remix is
kept), export; the downloaded WAV is the server's mixdown of the saved manifest. And the preview is the export:
the editor's own audio graph, rendered offline in the page, against POST /api/daw/export of the same manifest.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from core.daw.manifest import parse_manifest
from core.daw.mixdown import Mixdown, stem_audio
from tests.browser import chromium, log_in
from tests.conftest import PASSWORD, Server, User, upload_audio
from tests.jobs import wait_job
from tests.structure_songs import bar_song
from tests.test_processing_api import stored_path

ARTIFACTS = Path(__file__).parent / "artifacts"
AUTOPLAY = ["--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def editor_track(server: Server) -> dict[str, Any]:
    from tests.conftest import register

    user = register(server.url)
    song = bar_song(124, 4, "AB", 4, tonic=9, seed=1)  # ~16 s, two sections
    buf = io.BytesIO()
    sf.write(buf, song.audio, song.sr, format="WAV", subtype="PCM_16")
    track = upload_audio(user, buf.getvalue(), title="Night Drive", artist="The Synths")
    sep = user.api.post("/api/processing/separate", json={"track_id": track["id"]}).json()["data"]
    ana = user.api.post("/api/analysis/analyze", json={"track_id": track["id"]}).json()["data"]
    job = wait_job(user.api, f"/api/processing/job/{sep['job_id']}", timeout=120)
    assert job["status"] == "completed", job
    assert wait_job(user.api, f"/api/analysis/job/{ana['job_id']}", timeout=120)["status"] == "completed"
    return {"user": user, "track": track, "stems": {s["stem_type"]: s for s in job["stems"]}}


def remix_state(user: User, track_id: str) -> dict[str, Any]:
    return user.api.get(f"/api/daw/{track_id}").json()["data"]


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stem_entry(state: dict[str, Any], stem_id: str) -> dict[str, Any]:
    return next(s for s in state["manifest"]["stems"] if s["stem_id"] == stem_id)


def test_remix_a_track_in_the_editor(server: Server, editor_track: dict[str, Any], tmp_path: Path) -> None:
    user, track, stems = editor_track["user"], editor_track["track"], editor_track["stems"]
    with chromium(extra_args=AUTOPLAY) as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 860}, accept_downloads=True)
        log_in(page, server.url, user.email, PASSWORD)
        page.goto(f"{server.url}/tracks/{track['id']}")
        page.get_by_role("button", name="Open in editor").click()
        page.wait_for_url(f"**/daw/{track['id']}")
        page.locator("#daw-root[data-waveforms=drawn]").wait_for(timeout=20_000)
        assert page.locator("[data-testid^=lane-]").count() == 4
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "editor.png"))

        # Play: the playhead follows the audio clock.
        page.get_by_test_id("play").click()
        wait_for(lambda: float(page.locator("#daw-root").get_attribute("data-time") or 0) > 0.3, what="the clock")
        page.keyboard.press("Space")  # pause

        # Mute the drums: one history step on the server.
        page.get_by_test_id("mute-drums").click()
        state = wait_for(lambda: (s := remix_state(user, track["id"]))["version"] >= 1 and s, what="the mute")
        assert stem_entry(state, stems["drums"]["id"])["muted"] is True

        # Select two bars on the vocals lane and fade them in.
        lane = page.get_by_test_id("lane-vocals").locator("canvas")
        box = lane.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        page.get_by_role("button", name="Fade in").click()
        state = wait_for(lambda: (s := remix_state(user, track["id"]))["version"] >= 2 and s, what="the fade")
        ops = stem_entry(state, stems["vocals"]["id"])["operations"]
        assert [op["type"] for op in ops] == ["fade_in"] and ops[0]["params"]["curve"] == "s_curve"
        assert ops[0]["params"]["end_ms"] > ops[0]["params"]["start_ms"]
        page.screenshot(path=str(ARTIFACTS / "editor-edited.png"))

        # Undo and redo go through the server's history.
        page.get_by_test_id("undo").click()
        wait_for(lambda: not stem_entry(remix_state(user, track["id"]), stems["vocals"]["id"])["operations"],
                 what="the undo")
        page.keyboard.press("Control+Shift+Z")
        wait_for(lambda: stem_entry(remix_state(user, track["id"]), stems["vocals"]["id"])["operations"],
                 what="the redo")

        # A reload shows the same remix.
        page.reload()
        page.locator("#daw-root[data-waveforms=drawn]").wait_for(timeout=20_000)
        shown = page.evaluate("window.dawEditor.manifest")
        saved = remix_state(user, track["id"])
        assert shown == saved["manifest"]

        # Export: the download is the server's mixdown of the saved manifest.
        with page.expect_download(timeout=30_000) as download:
            page.get_by_test_id("export").click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        assert path.name == "The Synths - Night Drive (remix).wav"
        files = {s["id"]: stored_path(server, s["url"]) for s in stems.values()}
        manifest = parse_manifest(saved["manifest"])
        mixdown = Mixdown(manifest, [stem_audio(files[str(s.stem_id)]) for s in manifest.stems])
        assert path.read_bytes() == b"".join(mixdown.wav_chunks())


PREVIEW_JS = """
async ([manifest, stems]) => {
  const { renderOffline } = await import('/daw-static/engine.js');
  const loaded = [];
  for (const s of stems) {
    const r = await fetch(`/api/stems/${s.id}/pcm?start=0&frames=${s.frames}&format=f32`, {credentials: 'same-origin'});
    const data = new Float32Array(await r.arrayBuffer());
    const channels = +r.headers.get('X-Channels');
    const planes = Array.from({length: channels}, (_, c) => {
      const out = new Float32Array(data.length / channels);
      for (let i = 0; i < out.length; i++) out[i] = data[i * channels + c];
      return out;
    });
    loaded.push({id: s.id, channels: planes, sampleRate: +r.headers.get('X-Sample-Rate')});
  }
  const buffer = await renderOffline(manifest, loaded, {startFrame: 0, endFrame: stems[0].frames});
  const out = new Float32Array(buffer.length * 2);
  const l = buffer.getChannelData(0), r = buffer.getChannelData(1);
  for (let i = 0; i < buffer.length; i++) { out[2 * i] = l[i]; out[2 * i + 1] = r[i]; }
  let binary = '';
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
"""


def test_the_preview_is_the_export(server: Server, editor_track: dict[str, Any]) -> None:
    user, track, stems = editor_track["user"], editor_track["track"], editor_track["stems"]
    ids = {name: s["id"] for name, s in stems.items()}
    doc = {"version": 1, "track_id": track["id"], "master": {"gain": 1.3}, "stems": [
        {"stem_id": ids["vocals"], "volume": 1.6, "pan": -0.3, "solo": True, "operations": [
            {"id": "a", "type": "fade_in", "params": {"start_ms": 0, "end_ms": 2000, "curve": "equal_power"}},
            {"id": "b", "type": "trim", "params": {"start_ms": 3000, "end_ms": 3500}},
            {"id": "c", "type": "gain", "params": {"start_ms": 5000, "end_ms": 7000, "level": 0.25}},
            {"id": "d", "type": "fade_out", "params": {"start_ms": 12000, "end_ms": 15000, "curve": "exponential"}},
            {"id": "e", "type": "split", "params": {"position_ms": 8000}}]},
        {"stem_id": ids["drums"], "volume": 0.8, "pan": 0.7, "solo": True, "operations": [
            {"id": "f", "type": "crop", "params": {"start_ms": 1000, "end_ms": 14000}},
            {"id": "g", "type": "fade_in", "params": {"start_ms": 1000, "end_ms": 3000, "curve": "logarithmic"}},
            {"id": "h", "type": "mute", "params": {"start_ms": 9000, "end_ms": 9500}}]},
        {"stem_id": ids["bass"], "pan": -1.0, "solo": True, "muted": True, "operations": [
            {"id": "i", "type": "fade_out", "params": {"start_ms": 4000, "end_ms": 6000, "curve": "s_curve"}}]},
        {"stem_id": ids["other"], "volume": 2.0, "operations": [
            {"id": "j", "type": "fade_in", "params": {"start_ms": 500, "end_ms": 1500, "curve": "linear"}}]},
    ]}
    r = user.browser.post(f"/api/daw/{track['id']}/changes", json={"manifest": doc},
                          headers={"X-CSRF-Token": user.csrf})
    assert r.status_code == 200, r.text
    saved = r.json()["data"]["manifest"]
    export = user.browser.post("/api/daw/export", data={"track_id": track["id"], "manifest": json.dumps(saved)},
                               headers={"X-CSRF-Token": user.csrf})
    assert export.status_code == 200, export.text
    exported, _ = sf.read(io.BytesIO(export.content), dtype="float64", always_2d=True)
    frames = [stem_audio(stored_path(server, s["url"])).frames for s in stems.values()]
    with chromium(extra_args=AUTOPLAY) as browser:
        page = browser.new_page()
        log_in(page, server.url, user.email, PASSWORD)
        page.goto(f"{server.url}/daw/{track['id']}")
        page.locator("#daw-root[data-waveforms=drawn]").wait_for(timeout=20_000)
        encoded = page.evaluate(PREVIEW_JS, [saved, [{"id": s["stem_id"], "frames": max(frames)}
                                                     for s in saved["stems"]]])
    preview = np.frombuffer(base64.b64decode(encoded), dtype="<f4").reshape(-1, 2).astype(np.float64)
    assert preview.shape == exported.shape
    clipped = np.clip(preview, -1.0, 1.0 - 2.0**-23)  # the export is 24-bit: what is beyond full scale is clipped
    residual = 10 * np.log10(np.sum((clipped - exported) ** 2) / np.sum(exported**2))
    assert residual <= -60.0, f"preview differs from the export by {residual:.1f} dB"


def test_a_track_without_stems_says_so_in_the_editor(server: Server, editor_track: dict[str, Any]) -> None:
    user = editor_track["user"]
    buf = io.BytesIO()
    sf.write(buf, np.zeros((44100, 2), dtype=np.float32), 44100, format="WAV")
    bare = upload_audio(user, buf.getvalue(), title="Unseparated", artist="Nobody")
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, server.url, user.email, PASSWORD)
        page.goto(f"{server.url}/daw/{bare['id']}")
        page.get_by_text("This track has no stems yet").wait_for()
        page.get_by_role("button", name="Separate on the track page").click()
        page.wait_for_url(f"**/tracks/{bare['id']}")
        page.goto(f"{server.url}/daw/not-a-track")
        page.get_by_text("This track does not exist.").wait_for()


def test_one_edit_is_picked_by_its_label_and_deleted(server: Server, editor_track: dict[str, Any]) -> None:
    user, track, stems = editor_track["user"], editor_track["track"], editor_track["stems"]
    state = remix_state(user, track["id"])
    doc = json.loads(json.dumps(state["manifest"]))
    bass = next(s for s in doc["stems"] if s["stem_id"] == stems["bass"]["id"])
    bass["operations"] = [{"id": "g1", "type": "gain", "params": {"start_ms": 2000, "end_ms": 6000, "level": 0.5}},
                          {"id": "t1", "type": "trim", "params": {"start_ms": 9000, "end_ms": 11000}}]
    r = user.api.post(f"/api/daw/{track['id']}/changes", json={"manifest": doc})
    assert r.status_code == 200, r.text
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        log_in(page, server.url, user.email, PASSWORD)
        page.goto(f"{server.url}/daw/{track['id']}")
        page.locator("#daw-root[data-waveforms=drawn]").wait_for(timeout=20_000)
        x = page.evaluate("(() => { const e = window.dawEditor; return e.xOf(9.5); })()")
        lane = page.get_by_test_id("lane-bass").locator("canvas")
        lane.click(position={"x": x, "y": 8})
        page.keyboard.press("Delete")
        left = wait_for(lambda: [op["id"] for op in stem_entry(remix_state(user, track["id"]), stems["bass"]["id"])
                                 ["operations"]] == ["g1"], what="the trim removed")
        assert left


def test_an_analysis_made_elsewhere_reaches_the_open_editor(server: Server, editor_track: dict[str, Any]) -> None:
    """Half time asked for over the API (or on the track page) while the editor is open: its tempo, beats and bars
    follow in place, and the edit made before stays, undoable."""
    user, track = editor_track["user"], editor_track["track"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        log_in(page, server.url, user.email, PASSWORD)
        page.goto(f"{server.url}/daw/{track['id']}")
        page.locator("#daw-root[data-waveforms=drawn]").wait_for(timeout=20_000)
        before = page.evaluate("(() => { const e = window.dawEditor; return {tempo: e.analysis.tempo,"
                               " beats: e.beats.length, bars: e.downbeats.length}; })()")
        assert abs(before["tempo"] - 124) < 3, before
        drums = editor_track["stems"]["drums"]["id"]
        muted = stem_entry(remix_state(user, track["id"]), drums)["muted"]
        page.get_by_test_id("mute-drums").click()
        wait_for(lambda: stem_entry(remix_state(user, track["id"]), drums)["muted"] is not muted, what="the mute saved")
        ana = user.api.post("/api/analysis/analyze", json={"track_id": track["id"], "features": ["tempo", "structure"],
                                                           "tempo_range": {"min": 40, "max": 80}}).json()["data"]
        assert wait_job(user.api, f"/api/analysis/job/{ana['job_id']}", timeout=120)["status"] == "completed"
        page.get_by_test_id("daw-tempo").filter(has_text="62.").wait_for(timeout=15_000)
        after = page.evaluate("(() => { const e = window.dawEditor;"
                              " return {beats: e.beats.length, bars: e.downbeats.length, undo: e.canUndo}; })()")
        assert abs(after["beats"] - before["beats"] / 2) <= 1, (before, after)
        assert abs(after["bars"] - before["bars"] / 2) <= 1, (before, after)
        assert after["undo"]
        page.get_by_text("New analysis: 62.").wait_for()
        page.screenshot(path=str(ARTIFACTS / "daw-new-analysis.png"))
        # An analysis of the key alone has no grid: the editor keeps the one it shows.
        ana = user.api.post("/api/analysis/analyze", json={"track_id": track["id"], "features": ["key"]}).json()["data"]
        assert wait_job(user.api, f"/api/analysis/job/{ana['job_id']}", timeout=120)["status"] == "completed"
        time.sleep(2.0)
        kept = page.evaluate("(() => { const e = window.dawEditor; return {bars: e.downbeats.length,"
                             " label: e.rulerLabel.textContent}; })()")
        assert kept == {"bars": after["bars"], "label": "Bars"}, kept
    assert stem_entry(remix_state(user, track["id"]), drums)["muted"] is not muted
