"""A person in Chromium on a track's page: analyse and separate it, watching the jobs run live."""

from __future__ import annotations

from pathlib import Path

from tests.browser import chromium, log_in
from tests.conftest import PASSWORD, Server
from tests.synth import song
from tests.test_tracks import upload


def test_analyze_and_separate_from_the_track_page(server: Server, user, tmp_path: Path) -> None:
    clip = song(9, "minor", 120, 10.0).write(tmp_path / "Synth - A minor groove.wav")  # A minor, 120 BPM
    track = upload(user.api, clip).json()["data"]
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, server.url, user.email, PASSWORD)
        page.locator("td", has_text="A minor groove").click()
        page.wait_for_url(f"**/tracks/{track['id']}")
        page.get_by_text("Not analysed yet.").wait_for()

        page.get_by_role("button", name="Analyse", exact=True).first.click()  # the Actions card comes first
        page.get_by_text("Analysis queued").wait_for()
        # The job row appears and ends completed without reloading the page.
        page.locator(".q-badge", has_text="completed").wait_for(timeout=90_000)
        page.get_by_text("A minor", exact=True).wait_for()
        tempo = page.get_by_text("BPM").inner_text()
        assert abs(float(tempo.split()[0]) - 120) < 2.5, tempo

        # Separate with the default (tiny, test-built) htdemucs: four stems with players and downloads.
        page.get_by_text("Not separated yet.").wait_for()
        page.get_by_role("button", name="Separate").click()
        page.get_by_text("Separation queued").wait_for()
        page.locator(".q-badge", has_text="completed").nth(1).wait_for(timeout=90_000)
        page.get_by_role("link", name="Download all (ZIP)").wait_for()
        assert page.locator("audio").count() == 1 + 4  # the track and its four stems
        names = page.locator(".w-24").all_inner_texts()
        assert {"Vocals", "Drums", "Bass", "Other"} <= set(names)

        # Half time: analyse again counting the beat at half the tempo; the page shows it live, with a note.
        page.locator("[data-testid=tempo-half]").click()
        page.get_by_text("Half time analysis queued").wait_for()
        page.locator(".q-badge", has_text="completed").nth(2).wait_for(timeout=90_000)
        page.get_by_text("is counted at").wait_for()
        halved = page.locator("[data-testid=analysis-tempo]").inner_text()
        assert abs(float(halved.split()[0]) - 60) < 1.5, halved
        # the Jobs card says which level that run asked for; both buttons stay on offer (30 and 120 BPM)
        page.get_by_text("Analysis 42–85 BPM").wait_for()
        assert page.locator("[data-testid=tempo-half]").is_enabled()
        assert page.locator("[data-testid=tempo-double]").is_enabled()

        # Analyse again: the half-time choice sticks
        page.get_by_role("button", name="Analyse", exact=True).first.click()
        page.locator(".q-badge", has_text="completed").nth(3).wait_for(timeout=90_000)
        assert page.get_by_text("Analysis 42–85 BPM").count() == 2
        again = page.locator("[data-testid=analysis-tempo]").inner_text()
        assert abs(float(again.split()[0]) - 60) < 1.5, again
