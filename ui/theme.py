"""The frame every page shares: header, navigation, and the sign-out action."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from data.models import User

BRAND = "StemForge"


def _log_out_js(csrf: str) -> str:
    return (
        "fetch('/users/log-out', {method: 'DELETE', credentials: 'same-origin', "
        f"headers: {{'X-CSRF-Token': {json.dumps(csrf)}}}}})"
        ".then(() => { window.location.href = '/users/log-in'; });"
    )


@contextmanager
def frame(title: str, user: User | None = None, csrf: str = "", *, wide: bool = False) -> Iterator[None]:
    ui.page_title(f"{title} · {BRAND}")
    ui.colors(primary="#6d28d9", secondary="#0f766e", accent="#f59e0b")
    with ui.header().classes("items-center justify-between bg-gray-900 text-white px-6 py-2"):
        ui.link(BRAND, "/").classes("text-xl font-bold text-white no-underline")
        if user is not None:
            with ui.row().classes("items-center gap-4"):
                ui.link("Library", "/").classes("text-white no-underline")
                ui.link("Jobs", "/jobs").classes("text-white no-underline")
                ui.link("Settings", "/users/settings").classes("text-white no-underline")
                ui.label(user.display_name or user.email).classes("text-gray-300 text-sm")
                ui.button("Log out", on_click=lambda: ui.run_javascript(_log_out_js(csrf))).props(
                    "flat color=white dense"
                ).mark("logout")
    with ui.column().classes("w-full p-3 gap-2" if wide else "w-full max-w-5xl mx-auto p-6 gap-4"):
        yield


def track_not_found(user: User, csrf: str) -> None:
    """The page for a track id that is not the user's (or does not exist)."""
    with frame("Not found", user, csrf):
        ui.label("This track does not exist.").classes("text-xl")
        ui.link("Back to the library", "/")
