"""Your Spotify, on the library page: Liked Songs and the linked account's playlists with covers and track
counts, paged; a click opens the tracks, all ticked, and one button imports and downloads them.

The data comes from the same functions as ``/api/spotify/*`` (core.spotify.user_api, workers.submit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from core.errors import StemForgeError
from core.settings import get_settings
from core.spotify import sign_in
from core.spotify.metadata import describe_skipped
from core.spotify.user_api import Entries, Listing, PlaylistSummary, SpotifyUserApi
from data.db import session_scope
from data.models import User
from ui import context
from ui.theme import MUTED, SPOTIFY_GREEN, mmss
from workers import submit

# Tiles per page: Liked Songs and 11 playlists on the first page, 12 playlists on the others (two rows of 6).
PAGE_SIZE = 12
FIRST_PAGE = PAGE_SIZE - 1


def page_window(page: int) -> tuple[int, int]:
    """``(offset, limit)`` of the playlists shown on ``page`` (1-based)."""
    return (0, FIRST_PAGE) if page == 1 else (FIRST_PAGE + (page - 2) * PAGE_SIZE, PAGE_SIZE)


def page_count(playlists: int) -> int:
    return 1 + max(0, -(-(playlists - FIRST_PAGE) // PAGE_SIZE))
async def _with_api(user: User, call: Callable[[SpotifyUserApi], Awaitable]):  # noqa: ANN202
    settings = get_settings()
    async with session_scope() as db, await SpotifyUserApi.for_user(settings, db, user.id) as api:
        return await call(api)


def _placeholder(icon: str) -> None:
    with ui.element("div").classes("w-full h-full aspect-square rounded bg-gradient-to-br from-violet-700 "
                                   "to-emerald-500 flex items-center justify-center"):
        ui.icon(icon, size="3rem").classes("text-white")


def _cover(url: str | None, icon: str) -> None:
    """The cover art, or a gradient with an icon when there is none or it does not load."""
    if not url:
        _placeholder(icon)
        return
    image = ui.image(url).classes("w-full aspect-square rounded object-cover")
    with image.add_slot("error"):
        _placeholder(icon)


async def spotify_panel(user: User, quality_default: str, qualities: dict[str, str],
                        on_imported: Callable[[], None]) -> None:
    """The panel; nothing when the server has no Spotify credentials, a "Link Spotify" prompt when the user
    has no account linked."""
    settings = get_settings()
    if not (settings.spotify_client_id and settings.spotify_client_secret):
        return
    async with session_scope() as db:
        account = await sign_in.account_of(db, user.id)
    if account is None:
        with ui.row().classes("w-full items-center gap-3 rounded border border-dashed border-gray-400 "
                              "dark:border-gray-600 p-3").props("data-testid=spotify-link-prompt"):
            ui.icon("library_music", size="1.5rem").classes("text-emerald-600")
            ui.label("Link your Spotify account to import your playlists and Liked Songs without copying links.")
            ui.space()
            ui.button("Link Spotify", color=SPOTIFY_GREEN).props(
                'href="/auth/spotify?next=/" unelevated no-caps text-color=white')
        return

    state = {"page": 1, "loaded": False}

    async def open_source(name: str, load: Callable[[SpotifyUserApi], Awaitable[Entries]]) -> None:
        await _import_dialog(user, name, load, quality_default, qualities, on_imported)

    @ui.refreshable
    async def grid() -> None:
        if not state["loaded"]:  # drawn once the panel is first opened: a library visit costs no Spotify call
            return
        try:
            liked, listing = await _with_api(user, lambda api: _first_page(api, state["page"]))
        except StemForgeError as exc:
            ui.label(exc.message).classes("text-red-600 dark:text-red-300").props("data-testid=spotify-error")
            return
        with ui.element("div").classes("grid gap-3 w-full grid-cols-2 sm:grid-cols-4 md:grid-cols-6"):
            if state["page"] == 1:
                _card("Liked Songs", f"{liked} tracks", None, "favorite",
                      lambda: open_source("Liked Songs", lambda api: api.all_liked()), "liked")
            for p in listing.items:
                _playlist_card(p, open_source)
        pages = page_count(listing.total)
        if pages > 1:
            ui.pagination(1, pages, direction_links=True, value=state["page"],
                          on_change=lambda e: (state.update(page=e.value), grid.refresh())).props(
                "data-testid=spotify-pages")

    async def on_open(e) -> None:  # noqa: ANN001
        if e.value and not state["loaded"]:
            state["loaded"] = True
            grid.refresh()

    with ui.expansion(f"Your Spotify · {account.display_name}", icon="library_music", on_value_change=on_open) \
            .classes("w-full border rounded").props("data-testid=your-spotify"):
        ui.label("Pick Liked Songs or a playlist to import its tracks; they download at the chosen quality "
                 "and show up in the library as they finish.").classes(f"text-sm {MUTED}")
        with ui.column().classes("w-full"):
            await grid()


async def _first_page(api: SpotifyUserApi, page: int) -> tuple[int, Listing]:
    liked = (await api.liked(0, 1)).total if page == 1 else 0
    listing = await api.playlists(*page_window(page))
    return liked, listing


def _card(title: str, subtitle: str, image: str | None, icon: str, on_click: Callable[[], Awaitable[None]],
          mark: str, flags: tuple[tuple[str, str], ...] = ()) -> None:
    with ui.card().tight().classes("cursor-pointer hover:shadow-lg min-w-0").on("click", on_click).props(
            f"data-testid=spotify-source-{mark}"):
        _cover(image, icon)
        with ui.card_section().classes("p-2 w-full min-w-0"):
            ui.label(title).classes("font-medium truncate w-full").tooltip(title)
            ui.label(subtitle).classes(f"text-xs {MUTED} truncate w-full").tooltip(subtitle)
            if flags:
                with ui.row().classes("gap-1 pt-1"):
                    for flag_icon, words in flags:
                        ui.icon(flag_icon, size="1rem").classes(MUTED).tooltip(words).props(f'aria-label="{words}"')


def _playlist_card(p: PlaylistSummary, open_source) -> None:  # noqa: ANN001
    flags = (("lock", "private"),) if p.public is False and not p.collaborative else ()
    flags += (("group", "collaborative"),) if p.collaborative else ()
    _card(p.name, f"{p.track_count} tracks · {p.owner}", p.image_url, "queue_music",
          lambda: open_source(p.name, lambda api: api.playlist(p.id)), p.id, flags)


async def _import_dialog(user: User, name: str, load: Callable[[SpotifyUserApi], Awaitable[Entries]],
                         quality_default: str, qualities: dict[str, str], on_imported: Callable[[], None]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-[52rem] max-w-full gap-3").props(
            "data-testid=spotify-import-dialog") as card:
        ui.label(name).classes("text-xl font-semibold")
        spinner = ui.spinner(size="lg")
    dialog.open()
    try:
        entries: Entries = await _with_api(user, load)
    except StemForgeError as exc:
        dialog.close()
        ui.notify(exc.message, type="negative")
        return
    spinner.delete()
    rows = [{"id": t.spotify_id, "title": t.title, "artist": t.artist, "album": t.album,
             "length": mmss(t.duration)} for t in entries.tracks]
    skipped = describe_skipped(entries.skipped)
    with card:
        ui.label(f"{len(rows)} tracks" + (f" · {skipped} (not importable)" if skipped else "")).classes(
            f"text-sm {MUTED}").props("data-testid=spotify-import-summary")
        columns = [{"name": k, "label": k.title(), "field": k, "align": "left"}
                   for k in ("title", "artist", "album", "length")]
        table = ui.table(columns=columns, rows=rows, row_key="id", selection="multiple",
                         pagination={"rowsPerPage": 10}).classes("w-full").props(
            ":selected-rows-label=\"n => n + ' ticked'\" rows-per-page-label=\"Tracks per page\" "
            'no-data-label="Nothing to import here" data-testid=spotify-import-tracks')
        table.selected = list(rows)
        with ui.row().classes("w-full items-center gap-2"):
            quality = ui.select(qualities, value=quality_default, label="Quality").props("outlined dense").classes(
                "w-44")
            ui.space()
            ui.button("Cancel", on_click=dialog.close).props("flat")
            button = ui.button().props("color=primary unelevated").props("data-testid=spotify-import")

        def label() -> None:
            button.text = f"Import {len(table.selected)} of {len(rows)} tracks"
            button.set_enabled(bool(table.selected))

        table.on_select(lambda _e: label())
        label()

        async def do_import() -> None:
            if button.props.get("loading"):  # a double click: the first one is under way
                return
            only = [r["id"] for r in table.selected]
            button.props("loading")
            try:
                async with session_scope() as db:
                    tracks, created = await submit.submit_spotify_import(
                        db, context.events(), user.id, entries.tracks, only=only, quality=quality.value)
            except StemForgeError as exc:
                button.props(remove="loading")
                ui.notify(exc.message, type="negative")
                return
            dialog.close()
            already = len(tracks) - len(created)
            ui.notify(f"Importing {len(tracks)} tracks of {name}: {len(created)} downloads queued"
                      + (f", {already} already in the library or downloading" if already else "")
                      + (f"; {skipped}" if skipped else ""), type="positive", multi_line=True)
            on_imported()

        button.on_click(do_import)
