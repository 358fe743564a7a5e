"""Chromium (Debian's package, installed by `make test`) driven through Playwright's bundled driver."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextmanager
def chromium(extra_args: list[str] | None = None) -> Iterator[Browser]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is missing: `make test` installs it (tests/scripts/browser.sh)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS + (extra_args or []))
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Sign in through the log-in form and land in the library."""
    page.goto(base_url + "/users/log-in")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")
