"""The frame every page shares: header, navigation, the theme switch and the sign-out action.

Dark by default (a studio at night); *light* is one click on the header's sun/moon button and is remembered
in a cookie (``stemforge_theme``), so every page renders in the chosen theme from its first paint. Text
colours come from the classes below (Tailwind's ``dark:`` variant follows Quasar's ``body--dark``), so
one page works in both themes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import context as nicegui_context
from nicegui import ui

from data.models import User

BRAND = "StemForge"
THEME_COOKIE = "stemforge_theme"

# Shared text and box styles for both themes.
MUTED = "text-gray-600 dark:text-gray-400"
ERROR_BOX = "text-red-800 bg-red-50 dark:text-red-200 dark:bg-red-950 rounded px-3 py-2 w-full"
NOTICE_BOX = "text-green-900 bg-green-50 dark:text-green-200 dark:bg-green-950 rounded px-3 py-2 w-full"
WARNING_TEXT = "text-amber-800 dark:text-amber-300"
OK_TEXT = "text-green-800 dark:text-green-300"
PANEL_BORDER = "border border-gray-300 dark:border-gray-700"
# Download qualities, one wording everywhere (the library, Your Spotify, the settings).
QUALITY_LABELS = {"high": "High · MP3 320 kbps", "medium": "Medium · MP3 192 kbps", "low": "Low · MP3 128 kbps",
                  "lossless": "Lossless · FLAC"}
# Spotify's own green, for its sign-in and link buttons (its brand guidelines ask for it).
SPOTIFY_GREEN = "#1DB954"

# The app's colours: violet primary, teal secondary, amber accent; Quasar's dark page is #121212.
COLORS = {"primary": "#7c3aed", "secondary": "#0d9488", "accent": "#f59e0b", "positive": "#16a34a",
          "negative": "#dc2626", "warning": "#d97706", "info": "#0284c7", "dark": "#1c1c22", "dark_page": "#121216"}


def mmss(seconds: float | None) -> str:
    """A length as m:ss ("4:07"), or an en dash when it is not known."""
    if seconds is None:
        return "–"
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _log_out_js(csrf: str) -> str:
    return (
        "fetch('/users/log-out', {method: 'DELETE', credentials: 'same-origin', "
        f"headers: {{'X-CSRF-Token': {json.dumps(csrf)}}}}})"
        ".then(() => { window.location.href = '/users/log-in'; });"
    )


def prefers_dark() -> bool:
    """The theme this browser chose (the cookie), dark when it never chose."""
    try:
        request = nicegui_context.client.request
    except (AttributeError, RuntimeError):
        return True
    return (request.cookies.get(THEME_COOKIE) if request is not None else None) != "light"


def _theme_switch(dark: ui.dark_mode) -> None:
    def flip() -> None:
        dark.toggle()
        choice = "dark" if dark.value else "light"
        ui.run_javascript(f"document.cookie = '{THEME_COOKIE}={choice}; path=/; max-age=31536000; SameSite=Lax'")
        button.props(f"icon={'light_mode' if dark.value else 'dark_mode'}")

    button = ui.button(on_click=flip).props(
        f"flat round dense color=white icon={'light_mode' if dark.value else 'dark_mode'}"
    ).tooltip("Switch between dark and light").mark("theme-switch")
    button.props('aria-label="Switch between dark and light" data-testid=theme-switch')


_CSS = """
.sf-cover-fallback { border-radius: 4px; background: linear-gradient(135deg, #6d28d9, #0d9488); color: #fff;
                     display: flex; align-items: center; justify-content: center; }
.sf-camelot { background: #4c1d95 !important; color: #ede9fe !important; font-weight: 600; }
.sf-link { color: inherit; text-decoration: none; }
.sf-link:hover { text-decoration: underline; }
.sf-library tbody tr { cursor: pointer; }
.sf-upload .q-uploader__list { min-height: 0; padding: 0; }
"""


@contextmanager
def frame(title: str, user: User | None = None, csrf: str = "", *, wide: bool = False) -> Iterator[None]:
    ui.page_title(f"{title} · {BRAND}")
    ui.colors(**COLORS)
    ui.add_css(_CSS)
    dark = ui.dark_mode(prefers_dark())
    with ui.header().classes("items-center justify-between bg-gray-950 text-white px-6 py-2 border-b "
                             "border-violet-900/60"):
        with ui.link(target="/").classes("flex items-center gap-2 no-underline text-white"):
            ui.icon("graphic_eq", size="1.6rem").classes("text-violet-400")
            ui.label(BRAND).classes("text-xl font-bold tracking-tight")
        with ui.row().classes("items-center gap-4"):
            if user is not None:
                ui.link("Library", "/").classes("text-white no-underline")
                ui.link("Jobs", "/jobs").classes("text-white no-underline")
                ui.link("Settings", "/users/settings").classes("text-white no-underline")
                ui.label(user.display_name or user.email).classes("text-gray-400 text-sm max-sm:hidden")
            _theme_switch(dark)
            if user is not None:
                ui.button("Log out", on_click=lambda: ui.run_javascript(_log_out_js(csrf))).props(
                    "flat color=white dense"
                ).mark("logout")
    with ui.column().classes("w-full p-3 gap-2" if wide else "w-full max-w-6xl mx-auto p-4 sm:p-6 gap-4"):
        yield


def track_not_found(user: User, csrf: str) -> None:
    """The page for a track id that is not the user's (or does not exist)."""
    with frame("Not found", user, csrf):
        ui.label("This track does not exist.").classes("text-xl")
        ui.link("Back to the library", "/")
