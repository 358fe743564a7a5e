"""Attaches the NiceGUI pages to the FastAPI app, so one server serves pages and API."""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import ui

from core.settings import Settings


def attach(app: FastAPI, settings: Settings) -> None:
    # Importing the page modules registers their @ui.page routes.
    from ui import auth_pages, daw_page, jobs_page, library_page, settings_page, track_page  # noqa: F401
    from ui.context import bind

    bind(app)

    ui.run_with(
        app,
        title="StemForge",
        favicon="🎛️",
        show_welcome_message=False,
        reconnect_timeout=10.0,
    )
