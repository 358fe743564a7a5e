"""A person in Chromium on the Jobs page: failed jobs show why, filters narrow the list, Retry starts a
failed job again and the new job runs live on the page, without a reload."""

from __future__ import annotations

import secrets
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser import chromium, log_in
from tests.conftest import PASSWORD, Server, User, register
from tests.fakes.audio_server import AudioServer
from tests.jobs import wait_job

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def download(user: User, url: str) -> str:
    r = user.api.post("/api/download/track", json={"url": url})
    assert r.status_code == 202, r.text
    return r.json()["data"]["job_id"]


def row(page: Page, job_id: str):  # noqa: ANN201  (a Playwright Locator)
    return page.locator(f'[data-job-id="{job_id}"]')


def test_retry_a_failed_job(jobs_server: Server, audio_server: AudioServer) -> None:
    user = register(jobs_server.url)
    key = secrets.token_hex(4)
    missing = download(user, f"{audio_server.url}/missing/{key}/Lost%20Tape.wav")  # 404: fails at once
    flaky = download(user, f"{audio_server.url}/flaky/3/{key}/Second%20Chance.wav")  # 503 x3: gives up, then works
    done = download(user, f"{audio_server.url}/audio/{key}/Fine%20Song.wav")
    for job_id in (missing, flaky, done):
        wait_job(user.api, f"/api/jobs/{job_id}", timeout=60)
    missing_error = user.api.get(f"/api/jobs/{missing}").json()["data"]["error"]
    assert "404" in missing_error

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        log_in(page, jobs_server.url, user.email, PASSWORD)
        page.goto(jobs_server.url + "/jobs")

        # Every job, newest first; the failed ones say why, in full.
        page.locator("[data-testid=job-row]").nth(2).wait_for()
        assert page.locator("[data-testid=job-row]").count() == 3
        assert row(page, missing).get_by_test_id("job-error").inner_text() == missing_error
        assert "Gave up after 3 attempts" in row(page, flaky).get_by_test_id("job-error").inner_text()
        assert row(page, done).get_by_test_id("job-error").is_hidden()
        assert row(page, done).get_by_test_id("job-elapsed").inner_text().startswith("took ")
        assert row(page, done).get_by_role("link", name="Fine Song").get_attribute("href").startswith("/tracks/")
        assert row(page, done).get_by_role("button", name="Retry").is_hidden()

        # Filter by status: the completed job leaves the list, and the address remembers the choice.
        page.get_by_role("button", name="Failed", exact=True).click()
        row(page, done).wait_for(state="detached")
        assert page.locator("[data-testid=job-row]").count() == 2
        page.wait_for_url("**/jobs?status=failed")

        # Keep the only download slot busy, so the retries wait in the queue for a while.
        blocker = download(user, f"{audio_server.url}/slow/8/{key}/Long%20Song.wav")
        wait_job(user.api, f"/api/jobs/{blocker}", ("downloading",))

        row(page, missing).get_by_role("button", name="Retry").click()
        page.get_by_text("Retry queued").wait_for()
        retry_rows = page.locator("[data-testid=job-row]", has_text="retry of an earlier job")
        retry_rows.first.wait_for()
        assert retry_rows.first.get_by_test_id("job-status").inner_text() == "queued"
        # A second click while the retry is still waiting starts nothing twice: the server's refusal shows.
        row(page, missing).get_by_role("button", name="Retry").click()
        page.get_by_text("This job was retried already").wait_for()

        row(page, flaky).get_by_role("button", name="Retry").click()
        page.locator("[data-testid=job-row]", has_text="retry of an earlier job").nth(1).wait_for()
        retries = {j["params"]["retry_of"]: j["id"] for j in user.api.get("/api/jobs").json()["data"]
                   if "retry_of" in j["params"]}
        assert set(retries) == {missing, flaky}

        # Free the slot: the retries run, live, on the page that is already open.
        assert user.api.delete(f"/api/jobs/{blocker}").status_code == 200
        second = row(page, retries[flaky])
        second.locator(".q-badge", has_text="completed").wait_for(timeout=60_000)
        assert second.get_by_test_id("job-message").inner_text() == "100% · Done"
        first = row(page, retries[missing])
        first.locator(".q-badge", has_text="failed").wait_for(timeout=30_000)
        assert first.get_by_test_id("job-error").inner_text() == missing_error
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload happened

        # All kinds and statuses again: the cancelled blocker is there too, with its Retry button.
        page.get_by_role("button", name="All", exact=True).click()
        row(page, blocker).wait_for()
        assert row(page, blocker).get_by_test_id("job-status").inner_text() == "cancelled"
        assert row(page, blocker).get_by_role("button", name="Retry").is_visible()
        assert page.locator("[data-testid=job-row]").count() == 6
        expect(page.locator(".q-notification")).to_have_count(0, timeout=15_000)  # a clear picture
        page.screenshot(path=str(ARTIFACTS / "jobs.png"), full_page=True)

        # The same page in the light theme.
        page.context.add_cookies([{"name": "stemforge_theme", "value": "light", "url": jobs_server.url}])
        page.goto(jobs_server.url + "/jobs?status=failed")
        row(page, retries[missing]).wait_for()
        page.screenshot(path=str(ARTIFACTS / "jobs-light.png"), full_page=True)
