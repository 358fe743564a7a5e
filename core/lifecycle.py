"""Start-up steps every process (web, worker, CLI) runs before touching data."""

from __future__ import annotations

import asyncio

from core.settings import Settings
from data import db


async def startup(settings: Settings) -> None:
    """Folders in place and the schema at the newest migration; safe to run in every process."""
    settings.ensure_dirs()
    # Alembic drives its own event loop, so it runs in a thread.
    await asyncio.to_thread(db.run_migrations, settings.effective_database_url)
    db.init_engine(settings.effective_database_url)
