"""The Huey queues, one per job kind, so each kind gets its own concurrency (``queue_concurrency``).

Storage follows the settings, in one place: ``SqliteHuey`` on ``<data dir>/queue.db`` by default,
``RedisHuey`` when ``STEMFORGE_REDIS_URL`` is set (queue names carry ``redis_prefix``, so installations
and test runs sharing a Redis server stay apart). Results are not stored: the ``Job`` row is the result.
"""

from __future__ import annotations

import threading

from huey import Huey, RedisHuey, SqliteHuey

from core.jobs import KINDS
from core.settings import Settings, get_settings

_lock = threading.Lock()
_queues: dict[str, Huey] = {}


def make_queue(settings: Settings, kind: str) -> Huey:
    name = f"{settings.redis_prefix}-{kind}"
    if settings.redis_url:
        return RedisHuey(name, url=settings.redis_url, results=False, blocking=True, read_timeout=1)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str((settings.data_dir / "queue.db").resolve()), results=False, timeout=30)


def queue_for(kind: str) -> Huey:
    """This process's queue for one kind (built from the process settings on first use)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    with _lock:
        if kind not in _queues:
            _queues[kind] = make_queue(get_settings(), kind)
        return _queues[kind]


def concurrency(settings: Settings, kind: str) -> int:
    return max(1, int(settings.queue_concurrency.get(kind, 1)))
