"""All of the user's jobs, live."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from ui.jobs_view import jobs_view
from ui.session import csrf_token, page_user
from ui.theme import frame


@ui.page("/jobs")
async def jobs_page(request: Request):
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/users/log-in?next=/jobs", status_code=303)
    with frame("Jobs", user, csrf_token(request)):
        ui.label("Jobs").classes("text-2xl font-semibold")
        with ui.card().classes("w-full"):
            await jobs_view(user.id, limit=100)
