"""A live list of jobs with progress bars, messages and cancel buttons.

Rows come from the database once, then follow the event log: a page never polls.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nicegui import ui

from core import jobs
from core.errors import StemForgeError
from core.events import Event
from data.db import session_scope
from data.models import Job, Track
from ui import context
from ui.live import follow_user_events

KIND_LABELS = {"download": "Download", "processing": "Separation", "analysis": "Analysis"}
STATUS_COLORS = {
    "queued": "grey",
    "downloading": "primary",
    "processing": "primary",
    "completed": "positive",
    "failed": "negative",
    "cancelled": "warning",
}


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

    @classmethod
    def of(cls, job: Job, title: str) -> JobRow:
        return cls(job.id, job.kind, job.track_id, title, job.status, job.progress, job.message, job.error)


async def _load(user_id: uuid.UUID, track_id: uuid.UUID | None, limit: int) -> list[JobRow]:
    async with session_scope() as db:
        page = await jobs.list_jobs(db, user_id, page=1, page_size=limit)
        rows = [j for j in page.items if track_id is None or j.track_id == track_id]
        titles: dict[uuid.UUID, str] = {}
        for job in rows:
            if job.track_id and job.track_id not in titles:
                track = await db.get(Track, job.track_id)
                titles[job.track_id] = f"{track.artist} - {track.title}".strip(" -") if track else ""
        return [JobRow.of(j, titles.get(j.track_id, "") if j.track_id else "") for j in rows]


async def jobs_view(
    user_id: uuid.UUID,
    *,
    track_id: uuid.UUID | None = None,
    limit: int = 50,
    on_finished: Callable[[Event], Awaitable[None] | None] | None = None,
) -> None:
    """Render the user's jobs (or one track's) and keep them current until the tab closes."""
    rows = {row.id: row for row in await _load(user_id, track_id, limit)}

    async def cancel(job_id: uuid.UUID) -> None:
        try:
            async with session_scope() as db:
                await jobs.cancel_job(db, context.events(), user_id, job_id)
        except StemForgeError as exc:
            ui.notify(exc.message, type="warning")

    @ui.refreshable
    def table() -> None:
        if not rows:
            ui.label("No jobs yet.").classes("text-gray-600").mark("no-jobs")
            return
        for row in rows.values():
            with ui.row().classes("w-full items-center gap-3 border-b border-gray-200 py-2").mark("job-row"):
                ui.badge(KIND_LABELS.get(row.kind, row.kind)).props("outline")
                with ui.column().classes("grow gap-1"):
                    with ui.row().classes("w-full justify-between"):
                        if row.track_id:
                            ui.link(row.track_title or "track", f"/tracks/{row.track_id}").classes("font-medium")
                        ui.badge(row.status, color=STATUS_COLORS.get(row.status, "grey")).mark("job-status")
                    ui.linear_progress(value=row.progress / 100, show_value=False, size="8px").props(
                        "rounded" + (" color=negative" if row.status == "failed" else "")
                    )
                    text = row.error if row.status == "failed" and row.error else row.message
                    ui.label(f"{row.progress}% · {text}" if text else f"{row.progress}%").classes(
                        "text-sm " + ("text-red-700" if row.status == "failed" else "text-gray-600")
                    ).mark("job-message")
                if row.status in (jobs.QUEUED, *jobs.RUNNING):
                    ui.button("Cancel", on_click=lambda r=row.id: cancel(r)).props("flat dense color=negative")

    async def on_event(event: Event) -> None:
        row = rows.get(event.job_id)
        if row is None:  # a job that started after the page was drawn
            fresh = {r.id: r for r in await _load(user_id, track_id, limit)}
            rows.clear()
            rows.update(fresh)
            row = rows.get(event.job_id)
            if row is None:
                return
        payload = event.payload
        if event.event == "job:progress":
            row.status = payload.get("status", row.status)
            row.progress = int(payload.get("progress", row.progress))
            row.message = payload.get("message", row.message)
        elif event.event == "job:completed":
            row.status, row.progress = jobs.COMPLETED, 100
        elif event.event == "job:failed":
            row.status, row.error = jobs.FAILED, payload.get("error")
        table.refresh()
        if on_finished is not None and event.event in ("job:completed", "job:failed"):
            result = on_finished(event)
            if result is not None:
                await result

    table()
    follow_user_events(user_id, on_event)
