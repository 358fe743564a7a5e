"""The library's track list: rows or cards, sorted and filtered on the server, with live status chips,
per-row actions and a selection for bulk actions (ui/library_actions.py).

One query per page (``core.tracks.list_tracks``); a job event of a track on the page updates its chip in
place, and a finished job reloads the page of rows (its stems, analysis or audio are new).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from core import jobs, tracks
from core.analysis.camelot import PITCH_CLASSES, camelot_code
from core.events import Event
from data.db import session_scope
from data.models import User
from ui.live import follow_user_events
from ui.theme import MUTED

PAGE_SIZES = (25, 50, 100)
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


def duration_text(seconds: int | None) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds is not None else "–"


def status_chips(row: tracks.TrackRow) -> list[dict[str, str]]:
    """The chips a row shows, e.g. ``[{"label": "separating 60 %", "color": "primary"}]``.

    A queued or running job first (its kind and percent), a failed newest job with its reason, then what
    the track has: stems, an analysis, or that its audio is still missing.
    """
    chips: list[dict[str, str]] = []
    act = row.activity
    if act is not None and act.status in (jobs.QUEUED, *jobs.RUNNING):
        verb = KIND_VERBS.get(act.kind, act.kind)
        label = f"{verb} {act.progress} %" if act.status != jobs.QUEUED else f"{verb} queued"
        chips.append({"label": label, "color": "primary", "tip": act.message or ""})
    elif act is not None and act.status == jobs.FAILED:
        chips.append({"label": f"{KIND_VERBS.get(act.kind, act.kind).replace('ing', '')} failed",
                      "color": "negative", "tip": act.error or act.message or ""})
    if row.has_stems:
        chips.append({"label": "stems ready", "color": "positive", "tip": "Open it in the editor"})
    if row.analysed:
        chips.append({"label": "analysed", "color": "secondary", "tip": ""})
    if row.audio_path is None and not (act is not None and act.status in (jobs.QUEUED, *jobs.RUNNING)):
        chips.append({"label": "no audio yet", "color": "grey-7", "tip": "Download or upload its audio"})
    return chips


def row_dict(row: tracks.TrackRow) -> dict[str, Any]:
    """A ``TrackRow`` as the JSON the table and cards render."""
    return {
        "id": str(row.id), "title": row.title or "Untitled", "artist": row.artist, "album": row.album,
        "cover": row.album_art_url or "", "duration": duration_text(row.duration),
        "bpm": f"{row.tempo:.0f}" if row.tempo else "", "key": row.key or "", "camelot": row.camelot or "",
        "energy": round(float(row.energy), 2) if row.energy is not None else None,
        "chips": status_chips(row), "has_stems": bool(row.has_stems), "has_audio": row.audio_path is not None,
        "job_id": str(row.activity.job_id) if row.activity else "",
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
    selected: list[dict[str, Any]] = field(default_factory=list)
    job_rows: dict[str, str] = field(default_factory=dict)  # job id -> track id, for live chips
    loaded_at: float = 0.0


_TABLE_COLUMNS = [
    {"name": "track", "label": "Track", "field": "title", "align": "left", "sortable": True},
    {"name": "album", "label": "Album", "field": "album", "align": "left", "classes": "max-md:hidden",
     "headerClasses": "max-md:hidden"},
    {"name": "duration", "label": "Length", "field": "duration", "align": "right", "sortable": True},
    {"name": "bpm", "label": "BPM", "field": "bpm", "align": "right", "sortable": True},
    {"name": "key", "label": "Key", "field": "camelot", "align": "left", "sortable": True},
    {"name": "energy", "label": "Energy", "field": "energy", "align": "left", "sortable": True,
     "classes": "max-sm:hidden", "headerClasses": "max-sm:hidden"},
    {"name": "status", "label": "Status", "field": "job_id", "align": "left"},
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
# Table column -> the list's sort name.
_COLUMN_SORTS = {"track": "title", "duration": "duration", "bpm": "bpm", "key": "key", "energy": "energy"}

_TRACK_CELL = """
<q-td :props="props">
  <div class="flex items-center no-wrap gap-3 min-w-0">
    <q-img v-if="props.row.cover" :src="props.row.cover" class="rounded shrink-0" style="width:40px;height:40px"
           no-spinner><template v-slot:error><div class="sf-cover-fallback" style="width:40px;height:40px">
           <q-icon name="music_note" /></div></template></q-img>
    <div v-else class="sf-cover-fallback shrink-0" style="width:40px;height:40px"><q-icon name="music_note" /></div>
    <div class="min-w-0">
      <a :href="'/tracks/' + props.row.id" class="font-medium sf-link block truncate" data-testid="row-title"
         @click.stop>{{ props.row.title }}</a>
      <div class="text-xs opacity-70 truncate">{{ props.row.artist }}</div>
    </div>
  </div>
</q-td>"""

_KEY_CELL = """
<q-td :props="props">
  <q-chip v-if="props.row.camelot" dense square class="sf-camelot" :title="props.row.key"
          data-testid="row-key">{{ props.row.camelot }}</q-chip>
  <span v-if="props.row.key" class="text-xs opacity-70 max-lg:hidden">{{ props.row.key }}</span>
</q-td>"""

_ENERGY_CELL = """
<q-td :props="props">
  <q-linear-progress v-if="props.row.energy !== null" :value="props.row.energy" rounded size="6px"
                     color="accent" style="width:64px" :title="'energy ' + props.row.energy" />
</q-td>"""

_STATUS_CELL = """
<q-td :props="props">
  <div class="flex gap-1 flex-wrap" data-testid="row-status">
    <q-chip v-for="chip in props.row.chips" :key="chip.label" dense :color="chip.color" text-color="white"
            class="text-xs">{{ chip.label }}<q-tooltip v-if="chip.tip">{{ chip.tip }}</q-tooltip></q-chip>
  </div>
</q-td>"""

_ACTIONS_CELL = """
<q-td :props="props" auto-width>
  <q-btn flat dense round icon="graphic_eq" :href="'/daw/' + props.row.id" @click.stop
         data-testid="row-editor"><q-tooltip>Open in editor</q-tooltip></q-btn>
  <q-btn flat dense round icon="more_vert" @click.stop data-testid="row-menu">
    <q-menu auto-close>
      <q-list dense style="min-width: 190px">
        <q-item clickable :href="'/tracks/' + props.row.id"><q-item-section>Open</q-item-section></q-item>
        <q-item clickable :disable="!props.row.has_audio"
                @click="$parent.$emit('row_action', ['separate', props.row.id])">
          <q-item-section>Separate…</q-item-section></q-item>
        <q-item clickable :disable="!props.row.has_audio"
                @click="$parent.$emit('row_action', ['analyse', props.row.id])">
          <q-item-section>Analyse</q-item-section></q-item>
        <q-item clickable :disable="!props.row.has_stems" :href="'/export/stems/' + props.row.id">
          <q-item-section>Download stems (ZIP)</q-item-section></q-item>
        <q-separator />
        <q-item clickable @click="$parent.$emit('row_action', ['delete', props.row.id])" class="text-negative">
          <q-item-section>Delete…</q-item-section></q-item>
      </q-list>
    </q-menu>
  </q-btn>
</q-td>"""


class LibraryView:
    """The list and its controls' state; ``on_action(action, [track ids])`` runs row and bulk actions."""

    def __init__(self, user: User, on_action: Callable[[str, list[str]], Awaitable[None]]) -> None:
        self.user = user
        self.state = LibraryState()
        self.on_action = on_action
        self.table: ui.table | None = None
        self.on_loaded: list[Callable[[], None]] = []

    # --- data ------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the page of rows the query asks for and redraw (a bad filter value: a notification)."""
        started = time.perf_counter()
        try:
            async with session_scope() as db:
                page = await tracks.list_tracks(db, self.user.id, **self.state.query.kwargs())
        except Exception as exc:  # noqa: BLE001  (InvalidInput from a filter: tell, keep the last rows)
            ui.notify(getattr(exc, "message", str(exc)), type="warning")
            return
        self.state.rows = [row_dict(r) for r in page.items]
        self.state.total = page.total_count
        self.state.total_pages = page.total_pages
        self.state.job_rows = {r["job_id"]: r["id"] for r in self.state.rows if r["job_id"]}
        self.state.loaded_at = time.perf_counter() - started
        ids = {r["id"] for r in self.state.rows}
        self.state.selected = [r for r in self.state.selected if r["id"] in ids]
        self.render.refresh()
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
        status = payload.get("status", jobs.QUEUED)
        progress = int(payload.get("progress", 0))
        kind = next((c["label"].split()[0] for c in row["chips"] if c["color"] == "primary"), "working")
        active = {"label": f"{kind} {progress} %" if status != jobs.QUEUED else f"{kind} queued",
                  "color": "primary", "tip": payload.get("message", "")}
        row["chips"] = [active] + [c for c in row["chips"] if c["color"] != "primary"]
        if self.table is not None:
            self.table.update()

    # --- drawing ---------------------------------------------------------------------------------

    def follow(self) -> None:
        follow_user_events(self.user.id, self.on_event)

    @ui.refreshable_method
    def render(self) -> None:
        state = self.state
        if not state.rows:
            self._empty()
            return
        if state.cards:
            self._cards()
        else:
            self._table()
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(f"{state.total} track{'s' if state.total != 1 else ''}").classes(f"text-sm {MUTED}").mark(
                "track-count")
            if state.total_pages > 1:
                ui.pagination(1, state.total_pages, direction_links=True, max_pages=7, value=state.query.page,
                              on_change=self._page_changed).props("data-testid=library-pages")

    def _empty(self) -> None:
        filtered = any((self.state.query.search, self.state.query.status, self.state.query.bpm_min,
                        self.state.query.bpm_max, self.state.query.key, self.state.query.compatible_with))
        with ui.column().classes("w-full items-center py-10 gap-2").mark("empty"):
            ui.icon("library_music" if not filtered else "filter_alt_off", size="3rem").classes(MUTED)
            if filtered:
                ui.label("No track matches these filters.").classes("text-lg")
                ui.label("Clear a filter or widen the BPM range.").classes(MUTED)
            else:
                ui.label("Your library is empty.").classes("text-lg")
                ui.label("Paste a Spotify or audio link above, import from Your Spotify, or drop audio files.").classes(
                    MUTED)

    async def _page_changed(self, e: Any) -> None:
        self.state.query.page = int(e.value)
        await self.load()

    def _table(self) -> None:
        q = self.state.query
        sort_column = next((c for c, s in _COLUMN_SORTS.items() if s == q.sort), None)
        table = ui.table(
            columns=_TABLE_COLUMNS, rows=self.state.rows, row_key="id", selection="multiple",
            # rowsNumber puts the table in server mode: a click on a header asks (the "request" event) instead
            # of sorting the one page it holds.
            pagination={"rowsPerPage": 0, "sortBy": sort_column, "descending": q.descending,
                        "rowsNumber": self.state.total},
        ).classes("w-full sf-library").props(
            "flat bordered hide-bottom binary-state-sort data-testid=library-table "
            ":selected-rows-label=\"n => n + ' selected'\"")
        table.selected = list(self.state.selected)
        table.add_slot("body-cell-track", _TRACK_CELL)
        table.add_slot("body-cell-key", _KEY_CELL)
        table.add_slot("body-cell-energy", _ENERGY_CELL)
        table.add_slot("body-cell-status", _STATUS_CELL)
        table.add_slot("body-cell-actions", _ACTIONS_CELL)
        table.on("row_action", self._row_action)
        table.on("request", self._sort_request)
        table.on_select(lambda _e: self._selection_changed(table))
        table.on("rowClick", lambda e: ui.navigate.to(f"/tracks/{e.args[1]['id']}"))
        self.table = table

    def _cards(self) -> None:
        with ui.element("div").classes("grid gap-3 w-full grid-cols-2 sm:grid-cols-3 lg:grid-cols-5").mark("cards"):
            for row in self.state.rows:
                with ui.card().tight().classes("cursor-pointer hover:shadow-lg min-w-0").on(
                        "click", lambda r=row: ui.navigate.to(f"/tracks/{r['id']}")).props("data-testid=track-card"):
                    if row["cover"]:
                        ui.image(row["cover"]).classes("w-full aspect-square object-cover")
                    else:
                        with ui.element("div").classes("sf-cover-fallback w-full aspect-square"):
                            ui.icon("music_note", size="3rem")
                    with ui.card_section().classes("p-2 w-full min-w-0 gap-1"):
                        ui.label(row["title"]).classes("font-medium truncate w-full")
                        ui.label(row["artist"]).classes(f"text-xs {MUTED} truncate w-full")
                        with ui.row().classes("gap-1 items-center"):
                            if row["bpm"]:
                                ui.chip(f"{row['bpm']} BPM").props("dense square")
                            if row["camelot"]:
                                ui.chip(row["camelot"]).props("dense square").classes("sf-camelot").tooltip(row["key"])
                        with ui.row().classes("gap-1"):
                            for chip in row["chips"]:
                                ui.chip(chip["label"]).props(f"dense color={chip['color']} text-color=white").classes(
                                    "text-xs")

    # --- events ----------------------------------------------------------------------------------

    def _selection_changed(self, table: ui.table) -> None:
        self.state.selected = list(table.selected)
        for callback in self.on_loaded:
            callback()

    async def _row_action(self, e: Any) -> None:
        action, track_id = e.args
        await self.on_action(action, [track_id])

    async def _sort_request(self, e: Any) -> None:
        pagination = (e.args or {}).get("pagination", {})
        column = pagination.get("sortBy")
        q = self.state.query
        q.sort = _COLUMN_SORTS.get(column, "created_at") if column else "created_at"
        q.descending = bool(pagination.get("descending")) if column else True
        q.page = 1
        await self.load()

    def selected_ids(self) -> list[str]:
        return [r["id"] for r in self.state.selected]

    def titles(self, ids: list[str]) -> list[str]:
        by_id = {r["id"]: r for r in self.state.rows}
        return [by_id[i]["title"] for i in ids if i in by_id]


def parse_uuid_list(ids: list[str]) -> list[uuid.UUID]:
    out = []
    for value in ids:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            continue
    return out
