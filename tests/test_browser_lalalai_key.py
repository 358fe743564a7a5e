"""A person in Chromium stores their lalal.ai key on the settings page, sees it masked, and removes it."""

from __future__ import annotations

import secrets

from tests.browser import chromium
from tests.conftest import Server, User
from tests.fakes.lalalai import FakeLalalai


def test_lalalai_key_card_saves_masks_and_removes_the_key(server: Server, user: User,
                                                          lalalai_fake: FakeLalalai) -> None:
    key = f"lalal-{secrets.token_hex(8)}"
    lalalai_fake.keys[key] = 42.0
    with chromium() as browser:
        context = browser.new_context()
        cookie = user.browser.cookies.get("stemforge_session")
        assert cookie
        context.add_cookies([{"name": "stemforge_session", "value": cookie, "url": server.url}])
        page = context.new_page()
        page.goto(server.url + "/users/settings")
        card = page.locator(".q-card", has_text="lalal.ai license key")
        card.get_by_text("No key stored.").wait_for()
        card.get_by_label("License key").fill(key)
        card.get_by_role("button", name="Save key").click()
        card.get_by_text("Stored key: ••••••••" + key[-4:]).wait_for()
        assert card.get_by_label("License key").input_value() == ""  # not left on the page
        assert key not in page.content()
        # The stored key is the user's for the API now.
        quota = user.api.get("/api/lalalai/quota").json()["data"]
        assert quota["remaining_minutes"] == 42.0
        card.get_by_role("button", name="Remove key").click()
        card.get_by_text("No key stored.").wait_for()
        assert user.api.get("/api/lalalai/quota").status_code == 401
