"""A live list of jobs: filters, progress bars, messages and errors, elapsed time, cancel and retry.

Rows come from the database in one query (the jobs joined with their tracks' titles), then follow the
event log: a page never polls the database. Each row is drawn once and then changed in place as its
events arrive; the list is drawn again only when a job it does not show yet may belong in it (a new
job, or one whose status now matches the filter), which costs one query per such status change. A
one-second timer ticks the elapsed times on the page itself, without any I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from nicegui import ui

from core import jobs
from core.errors import StemForgeError
from core.events import Event
from core.settings import get_settings
from data.db import session_scope
from data.models import Job, utcnow
from ui import context
from ui.live import follow_user_events
from ui.theme import mmss
from workers.submit import retry_job

KIND_LABELS = {"download": "Download", "processing": "Separation", "analysis": "Analysis"}
KIND_ICONS = {"download": "download", "processing": "call_split", "analysis": "insights"}
STATUS_COLORS = {
    "queued": "grey-7",
    "downloading": "primary",
    "processing": "primary",
    "completed": "positive",
    "failed": "negative",
    "cancelled": "warning",
}
ALL = "all"
KIND_FILTERS = {ALL: "All kinds", "download": "Downloads", "processing": "Separations", "analysis": "Analyses"}
STATUS_FILTERS = {ALL: "All", "active": "Active", "queued": "Queued", "running": "Running",
                  "completed": "Completed", "failed": "Failed", "cancelled": "Cancelled"}
MUTED = "text-grey-6"


@dataclass
class JobRow:
    id: uuid.UUID
    kind: str
    track_id: uuid.UUID | None
    track_title: str
    status: str
    progress: int
    message: str
    error: str | None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retry_of: str | None = None
    label: str = ""  # what the job is, in words: its kind's label, "Preview" for a separation preview, the
    # tempo range an analysis was asked to count the beat in

    @classmethod
    def of(cls, job: Job, title: str) -> JobRow:
        params = job.params or {}
        retry_of = params.get(jobs.RETRY_OF)
        label = KIND_LABELS.get(job.kind, job.kind)
        window = params.get("preview") if job.kind == "processing" else None
        if window:  # the worker writes the window it chose (start, end) when the job starts
            label = "Preview"
            if window.get("end") is not None:
                label += f" {mmss(window.get('start'))}–{mmss(window['end'])}"
        tempo_range = params.get("tempo_range") if job.kind == "analysis" else None
        if isinstance(tempo_range, list) and len(tempo_range) == 2:  # the beat counted inside a range asked for
            label += f" {tempo_range[0]:.0f}–{tempo_range[1]:.0f} BPM"
        return cls(job.id, job.kind, job.track_id, title, job.status, job.progress, job.message, job.error,
                   job.created_at, job.started_at, job.finished_at, str(retry_of) if retry_of else None, label)

    def apply(self, event: Event) -> None:
        """Bring the row up to date with one of its job's events."""
        payload, now = event.payload, utcnow()
        if event.event == "job:progress":
            self.status = payload.get("status", self.status)
            self.progress = int(payload.get("progress", self.progress))
            self.message = payload.get("message", self.message)
            if self.status in jobs.RUNNING:
                self.started_at = self.started_at or now
                self.error = None
        elif event.event == "job:completed":
            self.status, self.progress = jobs.COMPLETED, 100
            window = (payload.get("result") or {}).get("preview")
            if window:  # the preview's window, known once it ran
                self.label = f"Preview {mmss(window.get('start'))}–{mmss(window.get('end'))}"
        elif event.event == "job:failed":
            self.status, self.error = jobs.FAILED, payload.get("error") or self.error
        if self.status in jobs.FINISHED:
            self.finished_at = self.finished_at or now


def _title(title: str, artist: str) -> str:
    return f"{artist} - {title}".strip(" -")


async def _load(user_id: uuid.UUID, track_id: uuid.UUID | None, limit: int, kind: str | None,
                status: str | None) -> list[JobRow]:
    async with session_scope() as db:
        found = await jobs.list_jobs_with_tracks(db, user_id, kind=kind, status=status, track_id=track_id,
                                                 limit=limit)
    return [JobRow.of(f.job, _title(f.track_title, f.track_artist)) for f in found]


def _clock(seconds: float) -> str:
    """1:05, 12:00, 1:02:03."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def elapsed_text(row: JobRow, now: datetime) -> str:
    """How long the job waited or ran so far, or how long it took."""
    if row.status == jobs.QUEUED:
        return f"waiting {_clock((now - row.created_at).total_seconds())}"
    if row.status in jobs.RUNNING:
        return f"running {_clock((now - (row.started_at or row.created_at)).total_seconds())}"
    if row.started_at is None:
        return "never started"
    return f"took {_clock(((row.finished_at or now) - row.started_at).total_seconds())}"


def ago_text(when: datetime, now: datetime) -> str:
    seconds = (now - when).total_seconds()
    if seconds < 45:
        return "created just now"
    if seconds < 3600:
        return f"created {max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"created {round(seconds / 3600)} h ago"
    return f"created {when:%Y-%m-%d %H:%M} UTC"


class _RowView:
    """One job's row: drawn once, then changed in place by ``update`` (events) and ``tick`` (the clock)."""

    def __init__(self, row: JobRow, on_cancel: Callable[[uuid.UUID], Awaitable[None]],
                 on_retry: Callable[[uuid.UUID], Awaitable[None]]) -> None:
        self.row = row
        now = utcnow()
        with ui.row().classes("w-full items-start gap-3 no-wrap py-2").mark("job-row") as self.root:
            self.root.props(f'data-testid=job-row data-job-id="{row.id}" data-status="{row.status}"')
            ui.icon(KIND_ICONS.get(row.kind, "work")).classes(f"text-2xl mt-1 {MUTED}")
            with ui.column().classes("grow gap-1 min-w-0"):
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    title = row.track_title or "Untitled track"
                    if row.track_id:
                        ui.link(title, f"/tracks/{row.track_id}").classes(
                            "font-medium truncate text-primary min-w-[6rem]").style("flex-shrink: 4").mark("job-track")
                    else:
                        ui.label(row.label or KIND_LABELS.get(row.kind, row.kind)).classes("font-medium")
                    # on a narrow screen the kind ("Analysis 42–85 BPM") and the title share the room, each cut short
                    self.kind = ui.badge(row.label or KIND_LABELS.get(row.kind, row.kind)).props(
                        "outline color=grey-6").classes("min-w-0 overflow-hidden").style(
                        "text-overflow: ellipsis; white-space: nowrap; display: block").mark("job-kind")
                    ui.space()
                    self.status = ui.badge(row.status).props("data-testid=job-status").mark("job-status")
                self.bar = ui.linear_progress(value=0, show_value=False, size="8px").props("rounded")
                self.message = ui.label().classes(f"text-sm {MUTED} break-words").props(
                    "data-testid=job-message").mark("job-message")
                self.error = ui.label().classes(
                    "text-sm text-negative whitespace-pre-wrap break-words w-full").props(
                    "data-testid=job-error").mark("job-error")
                with ui.row().classes(f"items-center gap-x-4 gap-y-0 text-xs {MUTED}"):
                    with ui.row().classes("items-center gap-1"):
                        ui.icon("schedule")
                        self.created = ui.label(ago_text(row.created_at, now)).mark("job-created")
                        self.created.tooltip(f"{row.created_at:%Y-%m-%d %H:%M:%S} UTC")
                    with ui.row().classes("items-center gap-1"):
                        ui.icon("timer")
                        self.elapsed = ui.label(elapsed_text(row, now)).props("data-testid=job-elapsed").mark(
                            "job-elapsed")
                    if row.retry_of:
                        with ui.row().classes("items-center gap-1").mark("job-retry-of"):
                            ui.icon("replay")
                            ui.label("retry of an earlier job")
            with ui.column().classes("gap-1 items-end shrink-0"):
                self.cancel = ui.button("Cancel", icon="close", on_click=lambda: on_cancel(row.id)).props(
                    "flat dense no-caps color=negative").mark("job-cancel")
                self.retry = ui.button("Retry", icon="replay", on_click=lambda: on_retry(row.id)).props(
                    "flat dense no-caps color=primary").mark("job-retry")
        self.update()

    def update(self) -> None:
        row = self.row
        color = STATUS_COLORS.get(row.status, "grey-7")
        self.status.set_text(row.status)
        self.kind.set_text(row.label or KIND_LABELS.get(row.kind, row.kind))
        self.root.props(f"data-status={row.status}")
        self.status.props(f"color={color}")
        self.bar.set_value(row.progress / 100)
        self.bar.props(f"color={color}")
        self.message.set_text(f"{row.progress}% · {row.message}" if row.message else f"{row.progress}%")
        failed = row.status == jobs.FAILED and bool(row.error)
        self.message.set_visibility(not failed)  # "Failed" says less than the error below
        self.error.set_text(row.error if failed and row.error else "")
        self.error.set_visibility(failed)
        self.cancel.set_visibility(row.status in jobs.ACTIVE)
        self.retry.set_visibility(row.status in jobs.RETRYABLE)
        self.tick(utcnow())

    def tick(self, now: datetime) -> None:
        for label, text in ((self.elapsed, elapsed_text(self.row, now)), (self.created,
                                                                          ago_text(self.row.created_at, now))):
            if label.text != text:
                label.set_text(text)


def _event_status(event: Event) -> str | None:
    if event.event == "job:progress":
        return event.payload.get("status")
    return {"job:completed": jobs.COMPLETED, "job:failed": jobs.FAILED}.get(event.event)


@dataclass
class _State:
    kind: str = ALL
    status: str = ALL
    rows: dict[uuid.UUID, JobRow] = field(default_factory=dict)
    views: dict[uuid.UUID, _RowView] = field(default_factory=dict)
    pinned: set[uuid.UUID] = field(default_factory=set)  # retries started here: shown whatever the filter
    skipped: dict[uuid.UUID, str] = field(default_factory=dict)  # job -> the status it was found not to fit at

    def matches_status(self, status: str) -> bool:
        return self.status == ALL or status in jobs.statuses_of(self.status)


async def jobs_view(
    user_id: uuid.UUID,
    *,
    track_id: uuid.UUID | None = None,
    limit: int = 50,
    on_finished: Callable[[Event], Awaitable[None] | None] | None = None,
    filters: bool = False,
    kind: str | None = None,
    status: str | None = None,
    on_filter: Callable[[str | None, str | None], None] | None = None,
) -> None:
    """Render the user's jobs (or one track's) and keep them current until the tab closes.

    ``filters`` shows the kind and status filters (``kind`` and ``status`` pick the first ones; ``status``
    may be ``active`` or ``running``); ``on_filter(kind, status)`` hears of every change of them.
    ``on_finished`` is called for every job of the list that completes or fails."""
    state = _State(kind=kind if kind in KIND_FILTERS else ALL, status=status if status in STATUS_FILTERS else ALL)

    def chosen(value: str) -> str | None:
        return None if value == ALL else value

    async def reload() -> None:
        fresh = {r.id: r for r in await _load(user_id, track_id, limit, chosen(state.kind), chosen(state.status))}
        kept = [state.rows[i] for i in state.pinned if i in state.rows and i not in fresh]
        merged = sorted([*fresh.values(), *kept], key=lambda r: r.created_at, reverse=True)
        state.rows = {r.id: r for r in merged}
        state.skipped.clear()
        job_list.refresh()

    async def cancel(job_id: uuid.UUID) -> None:
        try:
            async with session_scope() as db:
                await jobs.cancel_job(db, context.events(), user_id, job_id)
        except StemForgeError as exc:
            ui.notify(exc.message, type="warning")

    async def retry(job_id: uuid.UUID) -> None:
        old = state.rows.get(job_id)
        try:
            async with session_scope() as db:
                job = await retry_job(db, context.events(), user_id, get_settings(), job_id)
        except StemForgeError as exc:
            ui.notify(exc.message, type="warning", multi_line=True)
            return
        ui.notify("Retry queued", type="positive")
        if job.id not in state.rows:  # its first event may have beaten us here
            state.rows = {job.id: JobRow.of(job, old.track_title if old else ""), **state.rows}
        state.pinned.add(job.id)
        state.skipped.pop(job.id, None)
        job_list.refresh()

    async def set_kind(value: str) -> None:
        state.kind = value
        await filter_changed()

    async def set_status(value: str) -> None:
        state.status = value
        await filter_changed()

    async def filter_changed() -> None:
        state.pinned.clear()
        await reload()
        if on_filter is not None:
            on_filter(chosen(state.kind), chosen(state.status))

    if filters:
        with ui.row().classes("w-full items-center gap-3 flex-wrap").mark("job-filters"):
            ui.toggle(KIND_FILTERS, value=state.kind, on_change=lambda e: set_kind(e.value)).props(
                "no-caps dense outline toggle-color=primary").classes("flex-wrap").mark("kind-filter")
            ui.toggle(STATUS_FILTERS, value=state.status, on_change=lambda e: set_status(e.value)).props(
                "no-caps dense outline toggle-color=primary").classes("flex-wrap").mark("status-filter")

    @ui.refreshable
    def job_list() -> None:
        state.views.clear()
        if not state.rows:
            filtered = state.kind != ALL or state.status != ALL
            ui.label("No jobs match these filters." if filtered else "No jobs yet.").classes(MUTED).mark("no-jobs")
            return
        for i, row in enumerate(state.rows.values()):
            if i:
                ui.separator()
            state.views[row.id] = _RowView(row, cancel, retry)
        if len(state.rows) >= limit and filters:
            ui.label(f"Showing the newest {limit} jobs.").classes(f"text-sm {MUTED}")

    async def on_event(event: Event) -> None:
        row = state.rows.get(event.job_id)
        if row is None:  # a job this list does not show: reload only when it may belong in it now
            status = _event_status(event)
            if status is None or state.skipped.get(event.job_id) == status:
                return
            if not state.matches_status(status):
                state.skipped[event.job_id] = status
                return
            await reload()  # reads the job as it is now: nothing of this event left to apply
            if event.job_id not in state.rows:
                state.skipped[event.job_id] = status
                return
        else:
            row.apply(event)
            view = state.views.get(row.id)
            if view is not None:
                view.update()
        if on_finished is not None and event.event in ("job:completed", "job:failed"):
            result = on_finished(event)
            if result is not None:
                await result

    def tick() -> None:
        now = utcnow()
        for view in state.views.values():
            view.tick(now)

    state.rows = {r.id: r for r in await _load(user_id, track_id, limit, chosen(state.kind), chosen(state.status))}
    with ui.column().classes("w-full gap-0").mark("job-list"):
        job_list()
    ui.timer(1.0, tick)
    follow_user_events(user_id, on_event)
