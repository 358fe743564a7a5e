"""The library: the user's tracks, search, and adding audio by upload."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import events, ui

from core import tracks
from core.errors import StemForgeError
from core.settings import get_settings
from data.db import session_scope
from data.files import FileStore
from data.models import User
from ui.session import csrf_token, page_user
from ui.theme import frame

PAGE_SIZE = 25


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

    with frame("Library", user, csrf_token(request)):
        ui.label("Your library").classes("text-2xl font-semibold")
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
