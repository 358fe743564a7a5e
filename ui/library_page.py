"""The library: the user's tracks, search, and adding audio by upload."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import events, ui

from core import spotify, tracks, user_settings
from core.errors import StemForgeError
from core.settings import get_settings
from core.spotify.metadata import describe_skipped
from core.spotify.share_links import resolve_share_link
from data.db import session_scope
from data.files import FileStore
from data.models import User
from ui import context
from ui.jobs_view import jobs_view
from ui.session import csrf_token, page_user
from ui.spotify_panel import spotify_panel
from ui.theme import frame
from workers import submit

PAGE_SIZE = 25


async def _default_quality(user: User) -> str:
    async with session_scope() as db:
        return (await user_settings.view(db, user, get_settings()))["default_quality"]


def _duration(seconds: int | None) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds is not None else "–"


async def _store_upload(user: User, upload: events.UploadEventArguments) -> None:
    settings = get_settings()
    store = FileStore(settings.uploads_dir)
    store.ensure()
    # NiceGUI spools big uploads to disk; import from there rather than holding the file in memory.
    with tempfile.TemporaryDirectory(dir=store.root) as tmp:
        spooled = Path(tmp) / "upload"
        await upload.file.save(spooled)
        try:
            with spooled.open("rb") as fh:
                async with session_scope() as db:
                    track = await tracks.add_uploaded_file(
                        db, store, user.id, fh, upload.file.name, max_bytes=settings.max_upload_mb * 1024 * 1024
                    )
        except StemForgeError as exc:
            ui.notify(f"{upload.file.name}: {exc.message}", type="negative")
            return
    ui.notify(f"Added {track.artist + ' - ' if track.artist else ''}{track.title}", type="positive")


QUALITIES = {"high": "MP3 320 kbps", "medium": "MP3 192 kbps", "low": "MP3 128 kbps", "lossless": "FLAC"}


async def _import_link(user: User, url: str, quality: str) -> str | None:
    """Start a download (track links) or add an album/playlist's tracks; returns what happened, for a notice.

    A share link of the Spotify app is resolved first; an album or playlist's notice says what was skipped,
    e.g. "Downloading 12 tracks of the playlist; skipped 2: 1 podcast episode, 1 local file". Raises the
    ``StemForgeError`` of a bad link (the caller shows its message).
    """
    settings = get_settings()
    url = (url or "").strip()
    if not url:
        return None
    url = await resolve_share_link(url, settings)
    collection = submit.is_spotify_link(url, settings.spotify_share_link_hosts) and (
        spotify.parse_spotify_url(url).kind != "track")
    async with session_scope() as db:
        if collection:
            imported = await spotify.import_url(db, user.id, url, spotify.get_catalog(settings), settings=settings)
            # The metadata was fetched just now: the downloads need not ask Spotify again.
            created = await submit.submit_library_downloads(db, context.events(), user.id, imported.tracks,
                                                            quality=quality)
            return _import_notice(imported, len(created))
        await submit.submit_download(db, context.events(), user.id, settings, url=url, quality=quality)
    return "Download queued"


def _import_notice(imported: spotify.Imported, queued: int) -> str:
    """``Downloading 12 tracks of the playlist; skipped 2: 1 podcast episode, 1 local file`` (``queued``: the
    downloads started; tracks with audio, or a download under way, are not downloaded again)."""
    count = len(imported.tracks)
    notice = (f"Downloading {queued} track{'s' if queued != 1 else ''} of the {imported.kind}" if count
              else f"No tracks to download in the {imported.kind}")
    if count > queued:
        notice += f" ({count - queued} already in the library)"
    skipped = describe_skipped(imported.skipped)
    return f"{notice}; {skipped}" if skipped else notice


@ui.page("/")
async def library_page(request: Request):
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/users/log-in", status_code=303)
    state = {"page": 1, "q": ""}

    @ui.refreshable
    async def track_table() -> None:
        async with session_scope() as db:
            result = await tracks.list_tracks(db, user.id, page=state["page"], page_size=PAGE_SIZE, search=state["q"])
        if not result.items:
            ui.label("No tracks yet: drop an audio file above." if not state["q"] else "No track matches.").classes(
                "text-gray-600"
            ).mark("empty")
            return
        columns = [
            {"name": "title", "label": "Title", "field": "title", "align": "left"},
            {"name": "artist", "label": "Artist", "field": "artist", "align": "left"},
            {"name": "album", "label": "Album", "field": "album", "align": "left"},
            {"name": "duration", "label": "Length", "field": "duration"},
            {"name": "format", "label": "Format", "field": "format"},
            {"name": "editor", "label": "", "field": "id"},
        ]
        rows = [
            {
                "id": str(t.id),
                "title": t.title,
                "artist": t.artist,
                "album": t.album,
                "duration": _duration(t.duration),
                "format": (t.audio_format or "pending").upper(),
            }
            for t in result.items
        ]
        table = ui.table(columns=columns, rows=rows, row_key="id").classes("w-full cursor-pointer").mark("tracks")
        table.on("rowClick", lambda e: ui.navigate.to(f"/tracks/{e.args[1]['id']}"))
        # "Open in editor" per row (the editor tells when a track has no stems yet).
        table.add_slot("body-cell-editor", """
            <q-td :props="props" auto-width>
              <q-btn flat dense round icon="graphic_eq" title="Open in editor" :href="'/daw/' + props.row.id"
                     @click.stop data-testid="row-editor" />
            </q-td>""")
        if result.total_pages > 1:
            ui.pagination(
                1,
                result.total_pages,
                direction_links=True,
                value=state["page"],
                on_change=lambda e: (state.update(page=e.value), track_table.refresh()),
            )
        ui.label(f"{result.total_count} track(s)").classes("text-sm text-gray-600")

    async def on_upload(e: events.UploadEventArguments) -> None:
        await _store_upload(user, e)
        track_table.refresh()

    def on_search(e: events.ValueChangeEventArguments) -> None:
        state.update(q=e.value or "", page=1)
        track_table.refresh()

    async def on_import() -> None:
        try:
            notice = await _import_link(user, link.value, quality.value)
        except StemForgeError as exc:
            ui.notify(exc.message, type="negative")
            return
        if notice:
            link.value = ""
            ui.notify(notice, type="positive")
            track_table.refresh()

    with frame("Library", user, csrf_token(request)):
        ui.label("Your library").classes("text-2xl font-semibold")
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            link = (
                ui.input("Paste a Spotify track, album or playlist link, or any audio link")
                .props("outlined dense clearable")
                .classes("grow")
                .on("keydown.enter", on_import)
                .mark("import-link")
            )
            quality = (
                ui.select(QUALITIES, value=await _default_quality(user), label="Quality")
                .props("outlined dense")
                .classes("w-44")
            )
            ui.button("Import", on_click=on_import).props("color=primary unelevated").mark("import")
        await spotify_panel(user, quality.value, QUALITIES, lambda: track_table.refresh())
        ui.upload(
            label="Drop audio files here (WAV, FLAC, MP3, OGG, M4A)",
            multiple=True,
            auto_upload=True,
            max_file_size=get_settings().max_upload_mb * 1024 * 1024,
            on_upload=on_upload,
        ).props('accept="audio/*,.flac,.m4a"').classes("w-full").mark("upload")
        ui.input("Search title or artist", on_change=on_search).props("outlined dense clearable debounce=300").classes(
            "w-full"
        ).mark("search")
        await track_table()
        with ui.expansion("Recent jobs", value=True).classes("w-full"):
            await jobs_view(user.id, limit=8, on_finished=lambda _e: track_table.refresh())
