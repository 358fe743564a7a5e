"""A person in Chromium pastes an audio link into the library and watches it download live."""

from __future__ import annotations

from tests.browser import chromium, log_in
from tests.conftest import PASSWORD, Server


def test_import_a_link_from_the_library(server: Server, user, audio_server) -> None:
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, server.url, user.email, PASSWORD)

        page.get_by_label("Paste a Spotify track").fill("not a link")
        page.get_by_role("button", name="Import").click()
        page.get_by_text("must be an http(s) URL").wait_for()

        page.get_by_label("Paste a Spotify track").fill(audio_server.url + "/slow/2/Night%20Drive.wav")
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Download queued", exact=True).wait_for()  # the toast, not the row chip "download queued"
        # The row's status chip follows the job live: downloading, then ready with the file's format.
        row = page.locator("[data-testid=library-table] tbody tr", has_text="Night Drive")
        row.get_by_test_id("row-status").get_by_text("downloading").wait_for(timeout=30_000)
        row.get_by_test_id("row-status").get_by_text("ready · MP3").wait_for(timeout=60_000)
        assert page.locator("td", has_text="Night Drive").count() == 1
