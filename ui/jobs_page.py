"""All of the user's jobs, live, with kind and status filters (kept in the address: /jobs?status=failed)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from ui.jobs_view import jobs_view
from ui.session import csrf_token, page_user
from ui.theme import frame


def _remember_filters(kind: str | None, status: str | None) -> None:
    query = urlencode({k: v for k, v in (("kind", kind), ("status", status)) if v})
    ui.run_javascript(f"history.replaceState(null, '', {json.dumps('/jobs' + ('?' + query if query else ''))})")


@ui.page("/jobs")
async def jobs_page(request: Request, kind: str | None = None, status: str | None = None):
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/users/log-in?next=/jobs", status_code=303)
    with frame("Jobs", user, csrf_token(request)):
        with ui.row().classes("w-full items-baseline justify-between"):
            ui.label("Jobs").classes("text-2xl font-semibold")
            ui.label("Downloads, separations and analyses, live. Retry starts a failed or cancelled job "
                     "again with the same settings.").classes("text-sm text-grey-6")
        with ui.card().classes("w-full gap-3"):
            await jobs_view(user.id, limit=100, filters=True, kind=kind, status=status,
                            on_filter=_remember_filters)
