"""Register and log-in forms.

Real HTML forms posting to the REST routes: they work with JavaScript off, and
the server sets the HttpOnly session cookie on the response itself.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from core.api.deps import safe_next
from core.settings import get_settings
from ui.session import csrf_token, page_user
from ui.theme import ERROR_BOX, MUTED, NOTICE_BOX, SPOTIFY_GREEN, frame


def _form(action: str, csrf: str, button: str, *, email: str, next_url: str = "", new_password: bool) -> None:
    with ui.element("form").props(f'method=post action="{action}"').classes("w-full flex flex-col gap-3"):
        ui.element("input").props(f'type=hidden name=_csrf_token value="{csrf}"')
        if next_url:
            ui.element("input").props(f'type=hidden name=next value="{next_url}"')
        ui.input("E-mail", value=email).props('name=email type=email autocomplete=email outlined').classes(
            "w-full"
        ).mark("email")
        ui.input("Password", password=True, password_toggle_button=True).props(
            "name=password outlined autocomplete=" + ("new-password" if new_password else "current-password")
        ).classes("w-full").mark("password")
        ui.button(button).props("type=submit color=primary unelevated").classes("w-full").mark("submit")


def _spotify_button(next_url: str = "") -> None:
    """"Sign in with Spotify", only when this server has Spotify credentials."""
    settings = get_settings()
    if not (settings.spotify_client_id and settings.spotify_client_secret):
        return
    with ui.row().classes("w-full items-center gap-2 text-gray-500 text-sm"):
        ui.separator().classes("grow w-auto")
        ui.label("or")
        ui.separator().classes("grow w-auto")
    href = "/auth/spotify" + (f"?next={quote(next_url)}" if next_url and next_url != "/" else "")
    ui.button("Sign in with Spotify", icon="music_note", color=SPOTIFY_GREEN).props(
        f'href="{href}" unelevated no-caps text-color=white'
    ).classes("w-full").mark("spotify-sign-in")


def _error(message: str | None) -> None:
    if message:
        ui.label(message).classes(ERROR_BOX).mark("error")


@ui.page("/users/log-in")
async def log_in_page(request: Request, error: str | None = None, email: str = "", next: str = "/",  # noqa: A002
                      notice: str | None = None):
    if await page_user(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    with frame("Log in"), ui.card().classes("w-full max-w-md mx-auto p-6 gap-4"):
        ui.label("Log in to StemForge").classes("text-2xl font-semibold")
        if notice:
            ui.label(notice).classes(NOTICE_BOX).mark("notice")
        _error(error)
        _form("/users/log-in", csrf_token(request), "Log in", email=email, next_url=next, new_password=False)
        _spotify_button(next)
        with ui.row().classes("gap-1 text-sm"):
            ui.label("No account yet?")
            ui.link("Create one", "/users/register")


@ui.page("/users/register")
async def register_page(request: Request, error: str | None = None, email: str = ""):
    if await page_user(request) is not None:
        return RedirectResponse("/", status_code=303)
    settings = get_settings()
    with frame("Create account"), ui.card().classes("w-full max-w-md mx-auto p-6 gap-4"):
        ui.label("Create your StemForge account").classes("text-2xl font-semibold")
        _error(error)
        _form("/users/register", csrf_token(request), "Create account", email=email, new_password=True)
        ui.label(f"Passwords need at least {settings.password_min_length} characters.").classes(
            f"text-sm {MUTED}"
        )
        _spotify_button()
        with ui.row().classes("gap-1 text-sm"):
            ui.label("Already registered?")
            ui.link("Log in", "/users/log-in")
