"""The library's track list: rows or cards (ui/library_table.py), sorted and filtered on the server, with
live status chips, per-row actions and a selection for bulk actions (ui/library_actions.py).

One query per page (``core.tracks.list_tracks``); a job event of a track on the page updates its chip in
place, and a finished job reloads the page of rows (its stems, analysis or audio are new).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from core import jobs, tracks
from core.analysis.camelot import PITCH_CLASSES, camelot_code
from core.errors import StemForgeError
from core.events import Event
from data.db import session_scope
from data.models import User
from ui.library_table import LibraryTable
from ui.live import follow_user_events
from ui.theme import MUTED, mmss

SORTS = {"created_at": "Date added", "title": "Title", "artist": "Artist", "duration": "Length", "bpm": "BPM",
         "key": "Key", "energy": "Energy"}
STATUSES = {"pending": "Waiting for audio", "active": "Working", "ready": "Audio ready", "separated": "Stems ready",
            "analysed": "Analysed", "failed": "Failed"}
KIND_VERBS = {"download": "downloading", "processing": "separating", "analysis": "analysing"}


def key_options() -> dict[str, str]:
    """The 24 keys in Camelot order, labelled like "8A · A minor" (value: the Camelot code)."""
    keys = [f"{p} {m}" for p in PITCH_CLASSES for m in ("major", "minor")]
    coded = sorted(((camelot_code(k) or "", k) for k in keys), key=lambda c: (int(c[0][:-1]), c[0][-1]))
    return {code: f"{code} · {name}" for code, name in coded}


KIND_NOUNS = {"download": "download", "processing": "separation", "analysis": "analysis"}


def activity_chip(kind: str, status: str, progress: int, message: str) -> dict[str, str]:
    """The chip of a queued or running job: "separating 60 %", or "separation queued"."""
    if status == jobs.QUEUED:
        return {"label": f"{KIND_NOUNS.get(kind, kind)} queued", "color": "primary", "tip": message}
    return {"label": f"{KIND_VERBS.get(kind, kind)} {progress} %", "color": "primary", "tip": message}


def status_chips(row: tracks.TrackRow) -> list[dict[str, str]]:
    """The chips a row shows, e.g. ``[{"label": "separating 60 %", "color": "primary", "tip": "..."}]``.

    A queued or running job first (its kind and percent), a failed newest job with its reason, then what
    the track has: stems, an analysis, its audio ready, or that its audio is still missing.
    """
    chips: list[dict[str, str]] = []
    act = row.activity
    busy = act is not None and act.status in (jobs.QUEUED, *jobs.RUNNING)
    if act is not None and busy:
        chips.append(activity_chip(act.kind, act.status, act.progress, act.message or ""))
    elif act is not None and act.status == jobs.FAILED:
        chips.append({"label": f"{KIND_NOUNS.get(act.kind, act.kind)} failed", "color": "negative",
                      "tip": act.error or act.message or ""})
    if row.has_stems:
        chips.append({"label": "stems ready", "color": "positive", "tip": "Open it in the editor"})
    if row.analysed:
        chips.append({"label": "analysed", "color": "secondary", "tip": ""})
    if row.audio_path is None and not busy:
        chips.append({"label": "no audio yet", "color": "grey-7", "tip": "Download or upload its audio"})
    elif row.audio_path is not None and not chips:
        fmt = (row.audio_format or "audio").upper()
        chips.append({"label": f"ready · {fmt}", "color": "grey-7", "tip": "Its audio is here: separate or analyse it"})
    return chips


def row_dict(row: tracks.TrackRow) -> dict[str, Any]:
    """A ``TrackRow`` as the JSON the table and cards render."""
    return {
        "id": str(row.id), "title": row.title or "Untitled", "artist": row.artist, "album": row.album,
        "cover": row.album_art_url or "", "duration": mmss(row.duration),
        "bpm": f"{row.tempo:.0f}" if row.tempo else "", "key": row.key or "", "camelot": row.camelot or "",
        "energy": round(float(row.energy), 2) if row.energy is not None else None,
        "chips": status_chips(row), "has_stems": bool(row.has_stems), "has_audio": row.audio_path is not None,
        "job_id": str(row.activity.job_id) if row.activity else "",
        "job_kind": row.activity.kind if row.activity else "",
    }


@dataclass
class Query:
    """What the user asked the list for (mirrors ``GET /api/tracks``' query parameters)."""

    page: int = 1
    page_size: int = 25
    search: str = ""
    sort: str = "created_at"
    descending: bool = True
    status: str | None = None
    bpm_min: float | None = None
    bpm_max: float | None = None
    key: str | None = None
    compatible_with: str | None = None

    def params(self) -> dict[str, str]:
        """The query as the page's URL keeps it (``/?sort=bpm&order=asc&mixes=8A``): only what differs from
        the defaults."""
        out = {"q": self.search, "status": self.status or "", "key": self.key or "",
               "mixes": self.compatible_with or "",
               "bpm_min": f"{self.bpm_min:g}" if self.bpm_min is not None else "",
               "bpm_max": f"{self.bpm_max:g}" if self.bpm_max is not None else ""}
        if self.sort != "created_at" or not self.descending:
            out.update(sort=self.sort, order="desc" if self.descending else "asc")
        if self.page > 1:
            out["page"] = str(self.page)
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_params(cls, params: dict[str, str]) -> Query:
        """A query from the URL's parameters; values that make no sense are left at their defaults (the
        list then says nothing is wrong: an old bookmark still opens the library)."""
        query = cls()
        query.search = params.get("q", "")[:200]
        if params.get("sort") in SORTS:
            query.sort = params["sort"]
            query.descending = params.get("order", "desc" if query.sort == "created_at" else "asc") == "desc"
        query.status = params.get("status") if params.get("status") in STATUSES else None
        options = key_options()
        query.key = params.get("key") if params.get("key") in options else None
        query.compatible_with = params.get("mixes") if params.get("mixes") in options else None
        for name in ("bpm_min", "bpm_max"):
            try:
                value = float(params.get(name, ""))
            except ValueError:
                continue
            if 0 <= value < 1000:
                setattr(query, name, value)
        page = params.get("page", "1")
        query.page = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
        return query

    def kwargs(self) -> dict[str, Any]:
        return {"page": self.page, "page_size": self.page_size, "search": self.search, "sort": self.sort,
                "order": "desc" if self.descending else "asc", "status": self.status, "bpm_min": self.bpm_min,
                "bpm_max": self.bpm_max, "key": self.key, "compatible_with": self.compatible_with}


@dataclass
class LibraryState:
    query: Query = field(default_factory=Query)
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    total_pages: int = 1
    cards: bool = False
    selected: list[str] = field(default_factory=list)  # ids
    job_rows: dict[str, str] = field(default_factory=dict)  # job id -> track id, for live chips


class LibraryView:
    """The list and its controls' state; ``on_action(action, [track ids])`` runs row and bulk actions."""

    def __init__(self, user: User, on_action: Callable[[str, list[str]], Awaitable[None]]) -> None:
        self.user = user
        self.state = LibraryState()
        self.on_action = on_action
        self.list: LibraryTable | None = None
        self.count: ui.label | None = None
        self.pages: ui.pagination | None = None
        self.empty: ui.column | None = None
        self.on_loaded: list[Callable[[], None]] = []

    # --- data ------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the page of rows the query asks for and show it (a bad filter value: a notification)."""
        try:
            async with session_scope() as db:
                page = await tracks.list_tracks(db, self.user.id, **self.state.query.kwargs())
        except StemForgeError as exc:  # InvalidInput from a filter: tell, keep the last rows
            ui.notify(exc.message, type="warning")
            return
        state = self.state
        state.rows = [row_dict(r) for r in page.items]
        state.total = page.total_count
        state.total_pages = page.total_pages
        state.job_rows = {r["job_id"]: r["id"] for r in state.rows if r["job_id"]}
        ids = {r["id"] for r in state.rows}
        state.selected = [i for i in state.selected if i in ids]
        self.show()
        for callback in self.on_loaded:
            callback()

    async def on_event(self, event: Event) -> None:
        """A job event: update the chip of its row in place; reload when a job ends or is new here."""
        track_id = self.state.job_rows.get(str(event.job_id))
        if event.event in ("job:completed", "job:failed", "job:cancelled") or track_id is None:
            if event.event == "job:progress" and track_id is None and event.payload.get("status") != jobs.QUEUED:
                return  # a running job of a track on another page: nothing to show here
            await self.load()
            return
        row = next((r for r in self.state.rows if r["id"] == track_id), None)
        if row is None:
            return
        payload = event.payload
        active = activity_chip(row["job_kind"], payload.get("status", jobs.QUEUED), int(payload.get("progress", 0)),
                               payload.get("message", ""))
        row["chips"] = [active] + [c for c in row["chips"] if c["color"] != "primary"]
        self.show()

    # --- drawing ---------------------------------------------------------------------------------

    def follow(self) -> None:
        follow_user_events(self.user.id, self.on_event)

    def render(self) -> None:
        """The list, its empty state, the count and the pages: drawn once, then updated by ``show``."""
        self.empty = ui.column().classes("w-full items-center py-10 gap-2").mark("empty")
        self.list = LibraryTable(on_select=self._selection_changed, on_sort=self._sort_clicked,
                                 on_action=lambda action, track_id: self.on_action(action, [track_id]))
        with ui.row().classes("w-full items-center justify-between"):
            self.count = ui.label("").classes(f"text-sm {MUTED}").mark("track-count")
            self.pages = ui.pagination(1, 1, direction_links=True, value=1, on_change=self._page_changed).props(
                "max-pages=7 boundary-numbers data-testid=library-pages")
        self.show()

    def show(self) -> None:
        state = self.state
        if self.list is None or self.count is None or self.pages is None or self.empty is None:
            return
        self.list.show(state.rows, selected=state.selected, sort=state.query.sort,
                       descending=state.query.descending, cards=state.cards)
        self.list.set_visibility(bool(state.rows))
        self.empty.set_visibility(not state.rows)
        if not state.rows:
            self._draw_empty()
        self.count.text = f"{state.total} track{'s' if state.total != 1 else ''}"
        self.pages.set_visibility(state.total_pages > 1)
        self.pages.props(f"max={state.total_pages}")
        self.pages.value = state.query.page

    def _draw_empty(self) -> None:
        q = self.state.query
        filtered = any((q.search, q.status, q.bpm_min, q.bpm_max, q.key, q.compatible_with))
        assert self.empty is not None
        self.empty.clear()
        with self.empty:
            ui.icon("library_music" if not filtered else "filter_alt_off", size="3rem").classes(MUTED)
            if filtered:
                ui.label("No track matches these filters.").classes("text-lg")
                hint = "Widen the BPM range or clear a filter." if q.bpm_min or q.bpm_max else "Clear a filter."
                ui.label(hint + " The funnel button clears them all.").classes(MUTED)
            else:
                ui.label("Your library is empty.").classes("text-lg")
                ui.label("Paste a Spotify or audio link above, import from Your Spotify, or drop audio files.").classes(
                    MUTED)

    # --- events ----------------------------------------------------------------------------------

    async def _page_changed(self, e: Any) -> None:
        if int(e.value) != self.state.query.page:
            self.state.query.page = int(e.value)
            await self.load()

    def _selection_changed(self, ids: list[str]) -> None:
        self.state.selected = ids
        for callback in self.on_loaded:
            callback()

    async def _sort_clicked(self, sort: str, descending: bool) -> None:
        q = self.state.query
        q.sort, q.descending, q.page = sort, descending, 1
        await self.load()

    def selected_ids(self) -> list[str]:
        return list(self.state.selected)

    def titles(self, ids: list[str]) -> list[str]:
        by_id = {r["id"]: r for r in self.state.rows}
        return [by_id[i]["title"] for i in ids if i in by_id]
