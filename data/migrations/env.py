"""Alembic environment: runs migrations over the app's async engine.

On PostgreSQL an advisory lock serialises concurrent start-ups (several web and
worker processes may boot at once); on SQLite the caller holds a file lock.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import data.models  # noqa: F401  (registers the tables on SQLModel.metadata)

MIGRATION_LOCK_ID = 7_311_994


def _do_run(connection: Connection) -> None:
    is_pg = connection.dialect.name == "postgresql"
    if is_pg:
        connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
    try:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if is_pg:
            connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
            connection.commit()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_do_run)
            await conn.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.config.attributes.get("database_url")
    if url:
        return url
    from core.settings import get_settings

    return get_settings().effective_database_url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=SQLModel.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async(_url()))
