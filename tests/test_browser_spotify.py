"""A person in Chromium signs in with Spotify (new, returning), links Spotify from the settings, cancels
at Spotify, replays a callback, and imports Liked Songs while the access token has expired.

Spotify's pages are the fake's (tests/fakes/spotify.py): the consent page with Agree / Cancel.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser import chromium, log_in
from tests.conftest import PASSWORD, Server
from tests.fakes.spotify import FakeSpotify


@pytest.fixture(autouse=True)
def _spotify_app(server: Server, spotify_fake: FakeSpotify) -> Iterator[None]:
    spotify_fake.register_redirect_uri(server.url + "/auth/spotify/callback")
    spotify_fake.auto_decision = None
    yield
    spotify_fake.sign_in_as(None)


def _spotify_person(fake: FakeSpotify) -> tuple[str, str]:
    spotify_id = "br" + secrets.token_hex(5)
    fake.add_user(spotify_id, display_name=f"Selector {spotify_id[-4:]}", email=f"{spotify_id}@mail.example")
    fake.sign_in_as(spotify_id)
    return spotify_id, f"{spotify_id}@mail.example"


def _sign_in_with_spotify(page: Page, base_url: str, *, agree: bool = True) -> None:
    page.goto(base_url + "/users/log-in")
    page.get_by_role("link", name="Sign in with Spotify").click()
    page.get_by_test_id("auth-accept" if agree else "auth-cancel").click()


def test_new_then_returning_spotify_user_and_a_replayed_callback(server: Server, spotify_fake: FakeSpotify) -> None:
    _, email = _spotify_person(spotify_fake)
    with chromium() as browser:
        page = browser.new_page()
        callbacks: list[str] = []
        page.on("request", lambda r: callbacks.append(r.url) if "/auth/spotify/callback" in r.url else None)
        _sign_in_with_spotify(page, server.url)
        page.wait_for_url("**/users/settings?notice=*")
        page.get_by_text("Welcome! You signed in with Spotify").wait_for()
        page.get_by_text(f"Signed in as {email}").wait_for()
        page.get_by_text("Linked to the Spotify account").wait_for()
        # The account has no password yet: set one without a current password.
        page.get_by_text("has no password yet").wait_for()
        page.get_by_label("New password").fill(PASSWORD)
        page.get_by_role("button", name="Set password").click()
        page.wait_for_url("**/users/log-in?next=**")

        # Returning: Spotify again, straight into the library of the same account.
        page.get_by_role("link", name="Sign in with Spotify").click()
        page.get_by_test_id("auth-accept").click()
        page.wait_for_url("**/users/settings")  # the `next` of the log-in page
        page.get_by_text(f"Signed in as {email}").wait_for()

        # Replaying a used callback (back button, a leaked URL) is refused and signs nobody in.
        assert callbacks
        fresh = browser.new_page()
        fresh.goto(callbacks[0])
        fresh.wait_for_url("**/users/log-in?error=*")
        fresh.get_by_text("already used").wait_for()

        # The password set above works too.
        other = browser.new_context().new_page()
        log_in(other, server.url, email, PASSWORD)


def test_consent_denied_at_spotify(server: Server, spotify_fake: FakeSpotify) -> None:
    _spotify_person(spotify_fake)
    with chromium() as browser:
        page = browser.new_page()
        _sign_in_with_spotify(page, server.url, agree=False)
        page.wait_for_url("**/users/log-in?error=*")
        page.get_by_text("You cancelled the Spotify sign-in").wait_for()
        page.goto(server.url + "/")
        page.wait_for_url("**/users/log-in")  # still signed out


def test_link_from_settings_and_import_liked_songs_while_the_token_expired(
        server: Server, spotify_fake: FakeSpotify, make_user) -> None:
    user = make_user()
    spotify_id, _ = _spotify_person(spotify_fake)
    liked = [spotify_fake.add_track(f"Groove {n}", "Crate Digger", seconds=3) for n in range(3)]
    spotify_fake.save_tracks(spotify_id, liked)
    spotify_fake.add_playlist("Warehouse 1995", liked[:2], owner=spotify_id, public=False)
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, server.url, user.email, user.password)
        page.get_by_test_id("spotify-link-prompt").wait_for()  # the library invites to link
        page.goto(server.url + "/users/settings")
        page.get_by_role("link", name="Link Spotify").click()
        page.get_by_test_id("auth-accept").click()
        page.wait_for_url("**/users/settings?notice=*")
        page.get_by_text("linked").first.wait_for()

        spotify_fake.expire_user_tokens(spotify_id)
        refreshes = spotify_fake.refresh_requests
        page.goto(server.url + "/")
        page.get_by_text("Your Spotify ·").click()
        page.get_by_test_id("spotify-source-liked").wait_for()
        page.get_by_text("Warehouse 1995").wait_for()
        page.locator("[aria-label=private]").first.wait_for()  # the lock icon of a private playlist
        page.get_by_test_id("spotify-source-liked").click()
        dialog = page.get_by_test_id("spotify-import-dialog")
        dialog.get_by_role("cell", name="Groove 2", exact=True).wait_for()
        page.get_by_role("button", name="Import 3 of 3 tracks").click()
        page.get_by_text("3 downloads queued").wait_for()
        assert spotify_fake.refresh_requests == refreshes + 1
        # The tracks are in the library; their downloads show in the live jobs list.
        for n in range(3):
            page.locator("td", has_text=f"Groove {n}").first.wait_for()
        deadline = time.monotonic() + 10
        while page.get_by_text("Groove 0").count() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        page.screenshot(path="tests/artifacts/spotify-import.png", full_page=True)
