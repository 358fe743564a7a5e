"""The library (`/`): adding music (a pasted link, Your Spotify, dropped files) and the user's tracks, sorted,
filtered and acted on one by one or in bulk (ui/library_view.py, ui/library_actions.py)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import background_tasks, events, ui

from core import spotify, tracks, user_settings
from core.errors import StemForgeError
from core.settings import get_settings
from core.spotify.metadata import describe_skipped
from core.spotify.share_links import resolve_share_link
from data.db import session_scope
from data.files import FileStore
from data.models import User
from ui import context, library_actions
from ui.guard import guarded
from ui.jobs_view import jobs_view
from ui.library_view import SORTS, STATUSES, LibraryView, Query, key_options
from ui.session import csrf_token, page_user
from ui.spotify_panel import spotify_panel
from ui.theme import QUALITY_LABELS, frame
from workers import submit


async def _default_quality(user: User) -> str:
    async with session_scope() as db:
        return (await user_settings.view(db, user, get_settings()))["default_quality"]


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


QUALITIES = QUALITY_LABELS


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
        notice += f" ({count - queued} already in the library or downloading)"
    skipped = describe_skipped(imported.skipped)
    return f"{notice}; {skipped}" if skipped else notice


# The filter menus open and close without Quasar's 300 ms fade: on a modest machine that animation alone held
# the main thread for most of a sort's round trip (bench/pages.py), and a filter should answer at once.
SELECT_PROPS = "outlined dense transition-show=none transition-hide=none transition-duration=0"


@ui.page("/")
async def library_page(request: Request, notice: str = "", error: str = ""):
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/users/log-in", status_code=303)
    start = Query.from_params(dict(request.query_params))

    async def act(action: str, ids: list[str]) -> None:
        titles = view.titles(ids)
        if action == "analyse":
            await library_actions.analyse(user, ids)
            await view.load()
        elif action == "separate":
            await library_actions.separate_dialog(user, ids, titles)
        elif action == "delete":
            await library_actions.delete_dialog(user, ids, titles, view.load)

    run = guarded(act)  # one gesture, one action: a double click on Delete… opens one dialog
    view = LibraryView(user, run)
    view.state.query = q = start

    def remember_query() -> None:
        """Keep sort, filters and page in the address: a reload or a shared link shows the same list."""
        query = urlencode(q.params())
        ui.run_javascript(f"history.replaceState(null, '', {json.dumps('/' + ('?' + query if query else ''))})")

    async def on_upload(e: events.UploadEventArguments) -> None:
        await _store_upload(user, e)
        uploader.reset()  # the notification said how it went; the list of files would only grow
        await view.load()

    async def on_import() -> None:
        if import_button.props.get("loading"):  # a double click: the first import is under way
            return
        import_button.props("loading")
        try:
            text = await _import_link(user, link.value, quality.value)
        except StemForgeError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return
        finally:
            import_button.props(remove="loading")
        if text:
            link.value = ""
            ui.notify(text, type="positive", multi_line=True)
            await view.load()

    async def changed(**values: object) -> None:
        if "sort" in values and values["sort"] == q.sort:
            return  # the Sort by menu following a click on a column header
        low, high = values.get("bpm_min", q.bpm_min), values.get("bpm_max", q.bpm_max)
        if isinstance(low, float) and isinstance(high, float) and low > high:
            ui.notify(f"“BPM from” ({low:g}) is above “BPM to” ({high:g}): swap them to see tracks.", type="warning")
            return
        for name, value in values.items():
            setattr(q, name, value)
        q.page = 1
        await view.load()

    def sort_followed() -> None:
        if sort_select.value != q.sort:
            sort_select.set_value(q.sort)

    def number(value: object) -> float | None:
        """A BPM bound as typed; nothing (no bound) for an empty field or a value below zero."""
        try:
            bound = float(value) if value not in (None, "") else None  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return bound if bound is not None and bound >= 0 else None

    async def clear_filters() -> None:
        for element, empty in ((search, ""), (status, None), (bpm_min, None), (bpm_max, None), (key, None),
                               (compatible, None)):
            element.set_value(empty)
        await changed(search="", status=None, bpm_min=None, bpm_max=None, key=None, compatible_with=None)

    async def toggle_view() -> None:
        view.state.cards = not view.state.cards
        view.state.selected = []  # cards have no ticks: no hidden selection for the bulk bar to act on
        view_button.props(f"icon={'view_list' if view.state.cards else 'grid_view'}")
        view.show()
        update_bulk_bar()

    def update_bulk_bar() -> None:
        count = len(view.selected_ids())
        bulk_bar.set_visibility(count > 0)
        bulk_label.text = f"{count} selected"

    view.on_loaded.append(update_bulk_bar)
    view.on_loaded.append(lambda: sort_followed())
    view.on_loaded.append(remember_query)

    with frame("Library", user, csrf_token(request)):
        if notice:
            ui.notify(notice, type="positive")
        if error:
            ui.notify(error, type="negative", multi_line=True)
        with ui.row().classes("w-full items-end justify-between"):
            ui.label("Your library").classes("text-2xl font-semibold")
        with ui.row().classes("w-full items-center gap-2 max-sm:flex-col max-sm:items-stretch"):
            link = (
                ui.input("Paste a Spotify track, album or playlist link, or any audio link")
                .props("outlined dense clearable")
                .classes("grow min-w-0")
                .on("keydown.enter", on_import)
                .mark("import-link")
            )
            with ui.row().classes("gap-2 no-wrap items-center"):
                quality = (
                    ui.select(QUALITIES, value=await _default_quality(user), label="Quality")
                    .props("outlined dense")
                    .classes("w-48 max-sm:grow")
                )
                import_button = ui.button("Import", on_click=on_import).props("color=primary unelevated").mark(
                    "import")
        await spotify_panel(user, quality.value, QUALITIES, lambda: background_tasks.create(view.load()))
        uploader = ui.upload(
            label="Drop audio files here, or click + (WAV, FLAC, MP3, OGG, M4A)",
            multiple=True,
            auto_upload=True,
            max_file_size=get_settings().max_upload_mb * 1024 * 1024,
            on_upload=on_upload,
        ).props('accept="audio/*,.flac,.m4a" flat bordered').classes("w-full sf-upload").mark("upload")

        with ui.row().classes("w-full items-center gap-2 flex-wrap").mark("library-toolbar"):
            search = ui.input("Search title or artist", value=q.search,
                              on_change=lambda e: changed(search=e.value or "")).props(
                "outlined dense clearable debounce=300").classes("w-52 max-sm:w-full").mark("search")
            sort_select = ui.select(SORTS, value=q.sort, label="Sort by",
                      on_change=lambda e: changed(sort=e.value, descending=e.value == "created_at")).props(
                SELECT_PROPS).classes("w-32").mark("sort")
            status = ui.select(STATUSES, value=q.status, label="Status", clearable=True,
                               on_change=lambda e: changed(status=e.value)).props(SELECT_PROPS).classes(
                "w-36").mark("status-filter")
            bpm_min = ui.number("BPM from", value=q.bpm_min, min=20, max=300,
                                on_change=lambda e: changed(bpm_min=number(e.value))) \
                .props("outlined dense debounce=400").classes("w-24").mark("bpm-min")
            bpm_max = ui.number("BPM to", value=q.bpm_max, min=20, max=300,
                                on_change=lambda e: changed(bpm_max=number(e.value))) \
                .props("outlined dense debounce=400").classes("w-24").mark("bpm-max")
            key = ui.select(key_options(), value=q.key, label="Key", clearable=True, with_input=True,
                            on_change=lambda e: changed(key=e.value)).props(SELECT_PROPS).classes("w-32").mark(
                "key-filter")
            compatible = ui.select(key_options(), value=q.compatible_with, label="Mixes with", clearable=True,
                                   with_input=True,
                                   on_change=lambda e: changed(compatible_with=e.value)).props(
                SELECT_PROPS).classes("w-44").tooltip(
                "Harmonically compatible keys: the same Camelot number, one step either way, or the relative "
                "major/minor").mark("compatible-filter")
            ui.button(icon="filter_alt_off", on_click=clear_filters).props(
                'flat round dense data-testid=clear-filters aria-label="Clear the filters"').tooltip(
                "Clear the filters")
            ui.space()
            view_button = ui.button(icon="grid_view", on_click=toggle_view).props(
                'flat round dense aria-label="Show as rows or cards"').tooltip("Rows or cards").mark("view-toggle")

        with ui.row().classes("w-full items-center gap-2 rounded px-3 py-1 bg-violet-100 dark:bg-violet-950") \
                .mark("bulk-bar") as bulk_bar:
            bulk_label = ui.label("").classes("font-medium")
            ui.space()
            ui.button("Analyse", icon="insights", on_click=lambda: run("analyse", view.selected_ids())).props(
                "flat dense").mark("bulk-analyse")
            ui.button("Separate…", icon="call_split", on_click=lambda: run("separate", view.selected_ids())).props(
                "flat dense").mark("bulk-separate")
            ui.button("Delete…", icon="delete", on_click=lambda: run("delete", view.selected_ids())).props(
                "flat dense color=negative").mark("bulk-delete")
        bulk_bar.set_visibility(False)

        view.render()
        await view.load()
        view.follow()
        # Each row's status chip follows its jobs already; the job list itself is drawn when opened.
        jobs_drawn = False

        async def open_jobs(e: events.ValueChangeEventArguments) -> None:
            nonlocal jobs_drawn
            if e.value and not jobs_drawn:
                jobs_drawn = True
                with jobs_panel:
                    await jobs_view(user.id, limit=8)

        with ui.expansion("Recent jobs", icon="history", on_value_change=open_jobs).classes("w-full").mark(
                "recent-jobs") as jobs_panel:
            pass
