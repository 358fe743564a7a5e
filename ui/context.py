"""The web app's shared objects (event hub, event log, file store) for the pages.

NiceGUI pages run inside NiceGUI's own sub-application, so ``request.app`` is not
the FastAPI app that owns these; ``attach`` records that app here once.
"""

from __future__ import annotations

from fastapi import FastAPI

from core.event_hub import EventHub
from core.events import EventLog
from data.files import FileStore

_app: FastAPI | None = None


def bind(app: FastAPI) -> None:
    global _app
    _app = app


def _state():  # noqa: ANN202
    if _app is None:
        raise RuntimeError("ui.context.bind(app) was not called")
    return _app.state


def hub() -> EventHub:
    return _state().hub


def events() -> EventLog:
    return _state().events


def store() -> FileStore:
    return _state().store
