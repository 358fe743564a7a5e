"""A musician in Chromium on an analysed, separated track's page: the waveform with its beat grid and sections,
the analysis as four ECharts charts, the stems with small waveforms, and a stem analysed on demand, the page
updating without a reload. Screenshots at laptop (1366 px) and tablet (820 px) widths land in tests/artifacts/.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from playwright.sync_api import Page

from tests.browser import chromium, log_in
from tests.conftest import PASSWORD, Server, register, upload_audio
from tests.jobs import wait_job
from tests.structure_songs import bar_song
from ui.track_charts import MAX_HEATMAP_COLUMNS, MAX_POINTS, energy_options, mfcc_options, tempo_options

ARTIFACTS = Path(__file__).parent / "artifacts"
CHARTS = ("chroma", "tempo", "energy", "mfcc")

# The number of data points of each series of a chart, read from its ECharts instance.
SERIES_SIZES = """(el) => {
  const chart = getElement(el).chart;
  return chart ? chart.getOption().series.map((s) => (s.data || []).length) : null;
}"""


@pytest.fixture(scope="module")
def analysed_track(server: Server) -> dict[str, Any]:
    user = register(server.url)
    song = bar_song(124, 4, "ABAB", 4, tonic=9, seed=3)  # ~31 s, A minor-ish material, four sections
    buf = io.BytesIO()
    sf.write(buf, song.audio, song.sr, format="FLAC")
    track = upload_audio(user, buf.getvalue(), title="Chart Song", artist="The Synths", name="chart.flac")
    sep = user.api.post("/api/processing/separate", json={"track_id": track["id"]}).json()["data"]
    ana = user.api.post("/api/analysis/analyze", json={"track_id": track["id"]}).json()["data"]
    job = wait_job(user.api, f"/api/processing/job/{sep['job_id']}", timeout=180)
    assert job["status"] == "completed", job
    analysis = wait_job(user.api, f"/api/analysis/job/{ana['job_id']}", timeout=120)
    assert analysis["status"] == "completed", analysis
    return {"user": user, "track": track, "analysis": analysis["result"]}


def _open(page: Page, server: Server, data: dict[str, Any]) -> None:
    log_in(page, server.url, data["user"].email, PASSWORD)
    page.goto(f"{server.url}/tracks/{data['track']['id']}")
    page.locator("[data-testid=track-waveform][data-drawn]").wait_for(timeout=20_000)


def _series(page: Page, name: str) -> list[int]:
    chart = page.locator(f"[data-testid=chart-{name}]")
    chart.wait_for()
    sizes = None
    for _ in range(50):  # the chart is set up a tick after it is mounted
        sizes = chart.evaluate(SERIES_SIZES)
        if sizes:
            break
        page.wait_for_timeout(100)
    assert sizes, f"the {name} chart has no series"
    return sizes


def test_the_analysis_as_pictures(server: Server, analysed_track: dict[str, Any]) -> None:
    result = analysed_track["analysis"]
    assert result["sections"] and result["features"]["rms"] and result["features"]["centroid"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        _open(page, server, analysed_track)
        # The track's waveform is drawn from its peaks; the canvas is really painted.
        wave = page.locator("[data-testid=track-waveform]")
        assert int(wave.get_attribute("data-drawn") or 0) > 100
        painted = wave.locator("canvas").evaluate(
            "(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n / (d.length / 4); }")
        assert painted > 0.2, painted  # the wave, the beat grid and the section bands cover the canvas
        # A click on the waveform seeks the track's player there.
        page.wait_for_function("() => document.querySelector('audio').readyState >= 1", timeout=20_000)
        box = wave.bounding_box()
        assert box
        page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        at, length = page.evaluate("() => [document.querySelector('audio').currentTime,"
                                   " document.querySelector('audio').duration]")
        assert abs(at / length - 0.5) < 0.05, (at, length)
        # Four charts with data: 12 chroma bars, the beat-to-beat tempo, level and centroid, the MFCC heatmap.
        assert _series(page, "chroma") == [12]
        assert _series(page, "tempo")[0] >= len(result["beats"]) - 2
        level, centroid = _series(page, "energy")
        assert 0 < level <= MAX_POINTS and 0 < centroid <= MAX_POINTS
        (cells,) = _series(page, "mfcc")
        assert cells == 13 * min(len(result["features"]["mfcc"][0]), MAX_HEATMAP_COLUMNS)
        # The stems: four small waveforms in their colours, players, downloads.
        assert page.locator("[data-testid=stem-waveform]").count() == 4
        page.wait_for_function("() => document.querySelectorAll('[data-testid=stem-waveform][data-drawn]').length"
                               " === 4", timeout=20_000)
        assert page.locator("audio").count() == 1 + 4
        page.get_by_role("button", name="Open in editor").wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "track-1366.png"), full_page=True)

        # A tablet: the charts and stems still fit, nothing runs off the side.
        page.set_viewport_size({"width": 820, "height": 1180})
        page.wait_for_timeout(500)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, overflow
        for name in CHARTS:
            box = page.locator(f"[data-testid=chart-{name}]").bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 820, (name, box)
        page.screenshot(path=str(ARTIFACTS / "track-820.png"), full_page=True)

        # Light theme: the same page, one click away.
        switch = page.locator("[data-testid=theme-switch]")
        if switch.count():
            switch.click()
            page.wait_for_timeout(400)
            page.set_viewport_size({"width": 1366, "height": 900})
            page.wait_for_timeout(400)
            page.screenshot(path=str(ARTIFACTS / "track-1366-light.png"), full_page=True)
            switch.click()  # back to the theme this browser had


def test_analyse_a_stem_on_demand(server: Server, analysed_track: dict[str, Any]) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        _open(page, server, analysed_track)
        drums = page.locator("[data-testid=stem-analyse][data-stem=drums]")
        assert drums.inner_text().strip().lower().endswith("analyse")
        drums.click()
        page.get_by_text("Analysis of the drums stem queued").wait_for()
        # The job runs in the embedded worker; the stem's row shows its result without a reload.
        row = page.locator("[data-testid=stem-analyse][data-stem=drums]")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=stem-analyse][data-stem=drums]')?.innerText"
            ".toLowerCase().includes('re-analyse')", timeout=90_000)
        assert row.count() == 1
        # Its charts open under it (the stems of the tiny test models are noise: some charts may say why
        # they are empty, but the four are there).
        before = page.locator(".nicegui-echart").count()
        page.get_by_text("Drums analysis charts").click()
        page.wait_for_function(f"() => document.querySelectorAll('.nicegui-echart').length > {before}",
                               timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "track-stem-analysed.png"), full_page=True)


def test_chart_options_stay_small_for_a_long_track() -> None:
    """Ten minutes at the analysis' 2 frames a second: the page gets at most MAX_POINTS points a curve."""
    frames, rate = 1200, 2.0
    result = {
        "duration": frames / rate, "frame_rate": rate, "tempo": 120.0, "tempo_confidence": 0.8,
        "beats": [i * 0.5 for i in range(1200)], "sections": [{"start": 0.0, "end": 600.0, "label": "A"}],
        "features": {"rms": [0.1] * frames, "centroid": [1500.0] * frames,
                     "mfcc": [[float(i % 7)] * frames for i in range(13)]},
    }
    energy = energy_options(result)
    assert energy and all(len(s["data"]) <= MAX_POINTS for s in energy["series"])
    mfcc = mfcc_options(result)
    assert mfcc and len(mfcc["series"][0]["data"]) == 13 * MAX_HEATMAP_COLUMNS
    tempo = tempo_options(result)
    assert tempo and len(tempo["series"][0]["data"]) <= MAX_POINTS
    assert energy_options({"features": {"mfcc": [[0.0]]}}) is None  # an analysis from before the curves
