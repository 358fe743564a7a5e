"""Live job updates for a page: one EventHub subscription per browser tab, closed with the tab."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from nicegui import background_tasks, ui

from core.events import Event
from ui import context


def follow_user_events(user_id: uuid.UUID, on_event: Callable[[Event], Awaitable[None] | None]) -> None:
    """Call ``on_event`` (in this page's context) for every event of the user's jobs while the tab lives."""
    client = ui.context.client
    sub = context.hub().subscribe_user(user_id)

    async def pump() -> None:
        while (event := await sub.get()) is not None:
            if client.id not in client.instances:  # the tab is gone
                break
            with client:
                result = on_event(event)
                if result is not None:
                    await result
        sub.close()

    task = background_tasks.create(pump(), name=f"live-events-{client.id}")
    client.on_delete(lambda: (sub.close(), task.cancel()))
