"""Point reads answered on the calling thread, straight from the SQLite file.

Why: through SQLAlchemy's async engine and aiosqlite, one query hops between the event loop and
aiosqlite's thread five times and walks SQLAlchemy's execution layer; for a primary-key lookup
that is about 90 % of the time the hottest API read takes. SQLite itself answers such a lookup
in a few microseconds, and in WAL mode a reader never waits for a writer (it reads the last
committed snapshot), so running it inline blocks the event loop for less time than the thread
hand-off alone would.

The statements stay SQLAlchemy Core selects: each is compiled once with the engine's own dialect,
and values go in and out through the column types' own bind and result processors, so a row read
here is the same row the async engine would return (UUIDs, datetimes, enums and JSON included).

Only reads go through here, on a connection opened read-only in autocommit mode (no transaction is
left open to hold back checkpoints). Writes, and every read that needs a transaction, stay on the
async engine. When SQLite reports the file busy (a checkpoint or recovery in progress), the
caller falls back to the async engine instead of waiting on the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

Processor = Callable[[Any], Any] | None


class _Prepared:
    """One select, compiled once: its SQL text, parameter order and per-column converters."""

    def __init__(self, stmt: Select, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.bind: list[Processor] = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names
        ]
        columns = list(stmt.selected_columns)
        self.result: list[Processor] = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        self.row_type = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            proc(values[name]) if proc is not None else values[name]
            for name, proc in zip(self.names, self.bind, strict=True)
        )

    def row(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.row_type(*(proc(v) if proc is not None else v for v, proc in zip(raw, self.result, strict=True)))


class InlineReader:
    """Read-only SQLite connections, one per thread that reads, and the statements prepared for them."""

    def __init__(self, path: Path, dialect: Dialect) -> None:
        self._uri = f"{path.resolve().as_uri()}?mode=ro"
        self._dialect = dialect
        self._prepared: dict[int, tuple[Select, _Prepared]] = {}
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # timeout=0: never wait on the caller's thread; a busy file sends the read to the async engine.
            conn = sqlite3.connect(self._uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _prepare(self, stmt: Select) -> _Prepared:
        # Keyed by identity: callers pass module-level statements built once. The statement is kept
        # beside its entry so its id can never be reused by another object.
        entry = self._prepared.get(id(stmt))
        if entry is None:
            entry = (stmt, _Prepared(stmt, self._dialect))
            self._prepared[id(stmt)] = entry
        return entry[1]

    def fetch_one(self, stmt: Select, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, columns by name as attributes, or None. Raises ``sqlite3.OperationalError``
        when the file is busy or not there yet."""
        prepared = self._prepare(stmt)
        raw = self._connection().execute(prepared.sql, prepared.params(params)).fetchone()
        return None if raw is None else prepared.row(raw)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
