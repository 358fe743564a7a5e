"""Account settings: profile, defaults, password, and API tokens."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from core import accounts, user_settings
from core.errors import StemForgeError
from core.settings import get_settings
from core.spotify import sign_in
from data.db import session_scope
from data.models import User
from ui.session import csrf_token, page_user
from ui.theme import (
    ERROR_BOX,
    MUTED,
    NOTICE_BOX,
    OK_TEXT,
    PANEL_BORDER,
    QUALITY_LABELS,
    SPOTIFY_GREEN,
    WARNING_TEXT,
    frame,
)

ENGINES = {"local": "Local (Demucs)", "lalalai": "lalal.ai cloud"}
MODELS = ["htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"]
QUALITIES = QUALITY_LABELS


async def _save(user: User, changes: dict) -> dict | None:
    try:
        async with session_scope() as db:
            fresh = await db.get(User, user.id)
            assert fresh is not None
            result = await user_settings.update(db, fresh, changes, get_settings())
    except StemForgeError as exc:
        ui.notify(exc.message, type="negative")
        return None
    ui.notify("Saved", type="positive")
    return result


async def _tokens_section(user: User) -> None:
    @ui.refreshable
    async def token_list() -> None:
        async with session_scope() as db:
            rows = await accounts.list_tokens(db, user)
        if not rows:
            ui.label("No API tokens yet.").classes(MUTED)
        for row in rows:
            with (
                ui.row().classes(f"items-center justify-between w-full border-b {PANEL_BORDER} py-1")
                .mark("token-row")
            ):
                ui.label(row.name or "(unnamed)").classes("font-medium")
                ui.label(f"{row.prefix}…").classes(f"font-mono text-sm {MUTED}")
                ui.label(f"created {row.created_at:%Y-%m-%d %H:%M} UTC").classes(f"text-sm {MUTED}")
                ui.button("Revoke", on_click=lambda r=row.id: revoke(r)).props("flat color=negative dense")

    async def revoke(token_id: uuid.UUID) -> None:
        async with session_scope() as db:
            await accounts.revoke_token(db, user, token_id)
        ui.notify("Token revoked")
        token_list.refresh()

    async def create() -> None:
        async with session_scope() as db:
            issued = await accounts.create_token(db, user, name.value or "")
        name.value = ""
        with ui.dialog() as dialog, ui.card().classes("gap-3"):
            ui.label("Your new API token").classes("text-lg font-semibold")
            ui.label("Copy it now: it is shown only this once.").classes(f"text-sm {MUTED}")
            ui.input(value=issued.token).props("readonly outlined").classes("w-[28rem] font-mono").mark("new-token")
            with ui.row():
                ui.button("Copy", on_click=lambda: ui.clipboard.write(issued.token)).props("outline")
                ui.button("Done", on_click=dialog.close).props("color=primary")
        dialog.open()
        token_list.refresh()

    with ui.card().classes("w-full gap-3"):
        ui.label("API tokens").classes("text-lg font-semibold")
        ui.label("Use a token as 'Authorization: Bearer <token>' to call the REST API.").classes(
            f"text-sm {MUTED}"
        )
        with ui.row().classes("items-center gap-2"):
            name = ui.input("Token name", placeholder="e.g. laptop script").props("outlined dense").mark("token-name")
            ui.button("Create token", on_click=create).props("color=primary unelevated").mark("create-token")
        await token_list()


@ui.page("/users/settings")
async def settings_page(request: Request, notice: str = "", error: str = ""):
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/users/log-in?next=/users/settings", status_code=303)
    settings = get_settings()
    async with session_scope() as db:
        current = await user_settings.view(db, user, settings)
    with frame("Settings", user, csrf_token(request)):
        ui.label("Settings").classes("text-2xl font-semibold")
        with ui.card().classes("w-full gap-3"):
            ui.label("Profile and defaults").classes("text-lg font-semibold")
            ui.label(f"Signed in as {user.email}").classes(f"text-sm {MUTED}")
            display = (
                ui.input("Display name", value=current["display_name"])
                .props("outlined dense")
                .classes("w-72")
                .mark("display-name")
            )
            engine = (
                ui.select(ENGINES, value=current["default_engine"], label="Default engine")
                .props("outlined dense")
                .classes("w-72")
            )
            model = (
                ui.select(MODELS, value=current["default_model"], label="Default model")
                .props("outlined dense")
                .classes("w-72")
            )
            quality = (
                ui.select(QUALITIES, value=current["default_quality"], label="Download quality")
                .props("outlined dense")
                .classes("w-72")
            )
            ui.button(
                "Save",
                on_click=lambda: _save(
                    user,
                    {
                        "display_name": display.value,
                        "default_engine": engine.value,
                        "default_model": model.value,
                        "default_quality": quality.value,
                    },
                ),
            ).props("color=primary unelevated").mark("save-profile")

        if notice:
            ui.label(notice).classes(NOTICE_BOX).mark("notice")
        if error:
            ui.label(error).classes(ERROR_BOX).mark("error")
        _password_card(user, has_password=current["has_password"])
        await _spotify_card(user, current)

        await _tokens_section(user)

        await _lalalai_section(user, current["lalalai_key"])


async def _lalalai_section(user: User, masked: str | None) -> None:
    """The lalal.ai license key: write-only (stored encrypted, shown masked), for the cloud engine."""
    with ui.card().classes("w-full gap-3").mark("lalalai-card"):
        ui.label("lalal.ai").classes("text-lg font-semibold")
        ui.label(
            "Your lalal.ai license key lets StemForge separate tracks on lalal.ai (engine 'lalal.ai cloud'). "
            "It is stored encrypted and never shown in full again."
        ).classes(f"text-sm {MUTED}")
        stored = ui.label(f"Stored key: {masked}" if masked else "No key stored.").mark("lalalai-stored")
        key = (
            ui.input("License key", password=True)
            .props("outlined dense autocomplete=off")
            .classes("w-96")
            .mark("lalalai-key")
        )

        async def save(value: str) -> None:
            result = await _save(user, {"lalalai_key": value})
            if result is not None:
                key.value = ""
                stored.text = f"Stored key: {result['lalalai_key']}" if result["lalalai_key"] else "No key stored."

        async def save_entered() -> None:
            if not (key.value or "").strip():
                ui.notify("Enter your lalal.ai license key first", type="warning")
                return
            await save(key.value)

        with ui.row():
            ui.button("Save key", on_click=save_entered).props("color=primary unelevated").mark("save-lalalai-key")
            ui.button("Remove key", on_click=lambda: save("")).props("flat color=negative").mark("remove-lalalai-key")


def _password_card(user: User, *, has_password: bool) -> None:
    with ui.card().classes("w-full gap-3").mark("password-card"):
        ui.label("Password").classes("text-lg font-semibold")
        if not has_password:
            ui.label("This account was made with Spotify and has no password yet. Set one to log in with your "
                     f"e-mail ({user.email}) as well.").classes(f"text-sm {MUTED}")
        cur = None
        if has_password:
            cur = ui.input("Current password", password=True).props("outlined dense autocomplete=current-password")
        new = ui.input("New password", password=True).props("outlined dense autocomplete=new-password").mark(
            "new-password")

        async def change() -> None:
            if not (new.value or ""):
                ui.notify("Enter the new password first", type="warning")
                return
            changes = {"new_password": new.value}
            if cur is not None:
                changes["current_password"] = cur.value
            if await _save(user, changes) is not None:
                # The password change signed out every browser, this one too: sign in again with it.
                ui.navigate.to("/users/log-in?" + urlencode({
                    "next": "/users/settings", "email": user.email,
                    "notice": "Password saved. Every browser was signed out: log in with the new password."}))

        ui.button("Change password" if has_password else "Set password", on_click=change).props("outline").mark(
            "change-password")


async def _spotify_card(user: User, current: dict) -> None:
    """Link (through Spotify's consent page) or unlink the account; unlinking deletes the stored tokens."""
    with ui.card().classes("w-full gap-3").mark("spotify-card"):
        ui.label("Spotify").classes("text-lg font-semibold")
        if not current["spotify_configured"]:
            ui.label(
                "Spotify is not set up on this server: set STEMFORGE_SPOTIFY_CLIENT_ID and "
                "STEMFORGE_SPOTIFY_CLIENT_SECRET (see the README, section Spotify)."
            ).classes(WARNING_TEXT)
            return
        linked = current["spotify_account"]
        if linked is None:
            ui.label("Link your Spotify account to sign in with it and to import your playlists and Liked Songs "
                     "from the library page.").classes(f"text-sm {MUTED}")
            ui.button("Link Spotify", icon="link", color=SPOTIFY_GREEN).props(
                'unelevated text-color=white href="/auth/spotify"').mark("link-spotify")
            return
        ui.label(f"Linked to the Spotify account {linked}.").classes(OK_TEXT).mark("spotify-linked")
        ui.label("StemForge reads your profile, playlists and Liked Songs; it never changes them. Unlinking "
                 "deletes the stored access; to revoke it at Spotify too, remove StemForge under "
                 "spotify.com > Account > Manage apps.").classes(f"text-sm {MUTED}")

        async def unlink() -> None:
            try:
                async with session_scope() as db:
                    fresh = await db.get(User, user.id)
                    assert fresh is not None
                    await sign_in.unlink(db, fresh)
            except StemForgeError as exc:
                ui.notify(exc.message, type="negative")
                return
            ui.navigate.to("/users/settings?notice=" + quote("Spotify unlinked."))

        with ui.dialog() as confirm, ui.card().classes("gap-3"):
            ui.label(f"Unlink the Spotify account {linked}?").classes("text-lg font-semibold")
            ui.label("StemForge deletes its access to your Spotify. Tracks you imported stay in the library.").classes(
                f"text-sm {MUTED}")
            with ui.row().classes("w-full justify-end"):
                ui.button("Keep it", on_click=confirm.close).props("flat")
                ui.button("Unlink", on_click=unlink).props("color=negative unelevated").mark("confirm-unlink")
        ui.button("Unlink Spotify", on_click=confirm.open).props("flat color=negative").mark("unlink-spotify")
