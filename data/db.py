"""The async engine, sessions, and start-up migrations.

One engine per process. SQLite runs in WAL mode with a busy timeout so the web
process and the worker can write the same file without "database is locked".
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.sql import Select
from sqlmodel.ext.asyncio.session import AsyncSession

from data.inline_read import InlineReader

_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None
_inline: InlineReader | None = None

SQLITE_PREFIX = "sqlite+aiosqlite:///"

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith(SQLITE_PREFIX) or url.endswith(":memory:"):
        return None
    return Path(url[len(SQLITE_PREFIX):])


def init_engine(url: str) -> AsyncEngine:
    global _engine, _sessionmaker, _inline
    _engine = make_engine(url)
    _sessionmaker = async_sessionmaker(_engine, class_=AsyncSession, expire_on_commit=False)
    path = _sqlite_file(url)
    _inline = InlineReader(path, _engine.sync_engine.dialect) if path is not None else None
    return _engine


def get_engine() -> AsyncEngine:
    if _engine is None:
        raise RuntimeError("database engine not initialised; call data.db.init_engine first")
    return _engine


@asynccontextmanager
async def session_scope() -> AsyncIterator[AsyncSession]:
    """A session for one unit of work; rolled back if the block raises."""
    if _sessionmaker is None:
        raise RuntimeError("database engine not initialised; call data.db.init_engine first")
    async with _sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise


async def fetch_one(stmt: Select, params: Mapping[str, Any]) -> Any | None:
    """The first row of a read-only select (columns as attributes), or None.

    On a SQLite file the read runs inline (see ``data.inline_read``: microseconds instead of a round
    trip through aiosqlite's thread); on PostgreSQL, or while the SQLite file is busy, through the
    async engine. Pass statements built once at module level: each is compiled once per process.
    """
    if _inline is not None:
        try:
            return _inline.fetch_one(stmt, params)
        except sqlite3.OperationalError:
            pass  # busy (a checkpoint or recovery): the async engine waits for it off the event loop
    async with get_engine().connect() as conn:
        return (await conn.execute(stmt, params)).first()


async def dispose_engine() -> None:
    global _engine, _sessionmaker, _inline
    if _inline is not None:
        _inline.close()
        _inline = None
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _sessionmaker = None


async def ping() -> None:
    async with get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))


def run_migrations(url: str) -> None:
    """Bring the schema to the newest revision. Safe to call from several processes."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = url
    with _sqlite_migration_lock(url):
        command.upgrade(cfg, "head")


@contextmanager
def _sqlite_migration_lock(url: str) -> Iterator[None]:
    """On SQLite, one process at a time migrates (the web process and its embedded worker start
    together on a fresh data dir); PostgreSQL takes an advisory lock in migrations/env.py instead."""
    path = _sqlite_file(url)
    if path is None:
        yield
        return
    import fcntl

    lock_path = path.with_suffix(".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
