"""A person in Chromium: register with the form, upload a file, create an API token in settings, use it,
log out and back in."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from tests.audio import write_audio
from tests.browser import chromium
from tests.conftest import PASSWORD, Server


def test_register_upload_create_token_use_it_and_log_out(server: Server, tmp_path: Path) -> None:
    email = f"browser-{secrets.token_hex(4)}@example.com"
    with chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_url("**/users/log-in")  # signed-out visitors land on the log-in form
        page.get_by_role("link", name="Create one").click()
        page.wait_for_url("**/users/register")

        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Create account").click()
        page.wait_for_url("**/users/register?error=*")
        assert "at least" in page.locator("text=Password must").inner_text()

        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        page.wait_for_url(server.url + "/")
        page.get_by_text("Your library", exact=True).wait_for()
        page.get_by_text("Your library is empty.").wait_for()

        # Dropping a file adds it to the library.
        song = write_audio(tmp_path / "Moderat - A New Error.flac", seconds=2.0)
        page.locator("input[type=file]").set_input_files(str(song))
        page.locator("td", has_text="A New Error").wait_for()
        assert page.locator("td", has_text="Moderat").count() == 1

        page.get_by_role("link", name="Settings").click()
        page.wait_for_url("**/users/settings")
        page.get_by_label("Token name").fill("from the browser")
        page.get_by_role("button", name="Create token").click()
        token = page.locator(".q-dialog input").input_value()
        assert token.startswith("sf_")
        page.get_by_role("button", name="Done").click()
        page.get_by_text("from the browser").wait_for()

        r = httpx.get(server.url + "/api/tracks", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["data"][0]["title"] == "A New Error"

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url("**/users/log-in")
        page.goto(server.url + "/users/settings")
        page.wait_for_url("**/users/log-in?next=**")

        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/users/settings")
        page.get_by_text("from the browser").wait_for()
