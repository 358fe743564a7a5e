"""The job-event log: every job state change, appended in order, durable, readable again.

One interface, two storages, chosen in one place (:func:`event_log_from_settings`) the way Huey picks
its storage class:

* :class:`SqlEventLog` (default): rows of the ``JobEvent`` table, written in the same transaction as the
  job change they describe, so the log and the ``Job`` row can never disagree. ``seq`` is the table's
  autoincrement key. On PostgreSQL an advisory transaction lock serialises appends, so commit order equals
  ``seq`` order and a follower reading ``seq > last`` can never skip a row that commits late.
  Followers poll (a cheap indexed query every ``event_poll_interval_s``).
* :class:`RedisEventLog` (when ``STEMFORGE_REDIS_URL`` is set): one Redis Stream for every event (the
  followers block on it, so delivery is pushed) plus one small stream per job for catch-up. ``seq`` is a
  Redis counter, taken and appended atomically by a Lua script, so stream order equals ``seq`` order even
  with many writers. The job row is committed first; the event follows it.

Workers only ever write here and the web process only reads: they never talk to each other directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from data.db import session_scope
from data.models import JobEvent

log = logging.getLogger("stemforge.events")

# Arbitrary constant naming the PostgreSQL advisory lock that orders appends.
_APPEND_LOCK_ID = 5_120_771


@dataclass(frozen=True)
class PendingEvent:
    """An event about to be appended; the log gives it its ``seq``."""

    job_id: uuid.UUID
    user_id: uuid.UUID
    event: str  # job:progress | job:completed | job:failed
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """An appended event. ``payload`` is what goes on the wire, ``seq`` included."""

    seq: int
    job_id: uuid.UUID
    user_id: uuid.UUID
    event: str
    payload: dict[str, Any]

    @classmethod
    def of(cls, seq: int, pending: PendingEvent) -> Event:
        return cls(seq, pending.job_id, pending.user_id, pending.event, {**pending.payload, "seq": seq})


class EventLog(ABC):
    """Append (workers and routes), follow from the tail (the web process's EventHub), read one job back."""

    @abstractmethod
    async def commit_with(self, session: AsyncSession, events: Sequence[PendingEvent]) -> list[Event]:
        """Commit the session's pending changes together with these events; returns them with their seq."""

    @abstractmethod
    async def read_job(self, job_id: uuid.UUID, after: int = 0) -> list[Event]:
        """Every event of one job with ``seq > after``, oldest first."""

    @abstractmethod
    async def tail_seq(self) -> int:
        """The seq of the newest event (0 for an empty log)."""

    @abstractmethod
    def follow(self, after: int | None = None) -> AsyncIterator[list[Event]]:
        """Batches of new events in order: those with ``seq > after``, or from the log's current end when
        ``after`` is None. Runs until cancelled."""

    async def close(self) -> None:  # noqa: B027  (optional hook: only some storages hold connections)
        """Release connections."""


class SqlEventLog(EventLog):
    def __init__(self, *, postgres: bool, poll_interval: float = 0.02, batch: int = 1000) -> None:
        self.postgres = postgres
        self.poll_interval = poll_interval
        self.batch = batch

    async def commit_with(self, session: AsyncSession, events: Sequence[PendingEvent]) -> list[Event]:
        if not events:
            await session.commit()
            return []
        if self.postgres:
            # Held until commit: appends are serialised, so a higher seq never commits before a lower one.
            await session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_APPEND_LOCK_ID))  # type: ignore[call-overload]
        rows = [JobEvent(job_id=e.job_id, user_id=e.user_id, event=e.event, payload=e.payload) for e in events]
        session.add_all(rows)
        await session.flush()
        seqs = [int(row.seq or 0) for row in rows]
        await session.commit()
        return [Event.of(seq, e) for seq, e in zip(seqs, events, strict=True)]

    @staticmethod
    def _event(row: JobEvent) -> Event:
        seq = int(row.seq or 0)
        return Event(seq, row.job_id, row.user_id, row.event, {**row.payload, "seq": seq})

    async def read_job(self, job_id: uuid.UUID, after: int = 0) -> list[Event]:
        async with session_scope() as session:
            rows = await session.exec(
                select(JobEvent).where(JobEvent.job_id == job_id, col(JobEvent.seq) > after).order_by(
                    col(JobEvent.seq))
            )
            return [self._event(r) for r in rows.all()]

    async def tail_seq(self) -> int:
        async with session_scope() as session:
            return int((await session.exec(select(func.max(JobEvent.seq)))).one() or 0)

    async def _after(self, last: int) -> list[Event]:
        async with session_scope() as session:
            rows = await session.exec(
                select(JobEvent).where(col(JobEvent.seq) > last).order_by(col(JobEvent.seq)).limit(self.batch)
            )
            return [self._event(r) for r in rows.all()]

    async def follow(self, after: int | None = None) -> AsyncIterator[list[Event]]:
        last = await self.tail_seq() if after is None else after
        while True:
            events = await self._after(last)
            if events:
                last = events[-1].seq
                yield events
                if len(events) == self.batch:
                    continue
            await asyncio.sleep(self.poll_interval)


# KEYS: global stream, seq counter, job stream. ARGV: job_id, user_id, event, payload, maxlen, job ttl.
_APPEND_SCRIPT = """
local seq = redis.call('INCR', KEYS[2])
local id = seq .. '-0'
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], id,
           'job_id', ARGV[1], 'user_id', ARGV[2], 'event', ARGV[3], 'payload', ARGV[4])
redis.call('XADD', KEYS[3], id, 'job_id', ARGV[1], 'user_id', ARGV[2], 'event', ARGV[3], 'payload', ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return seq
"""


class RedisEventLog(EventLog):
    """Redis Streams. The global stream is capped (``maxlen``, approximate); per-job streams expire after
    ``job_ttl_s`` of silence: by then the ``Job`` row alone tells a late client everything."""

    def __init__(self, url: str, prefix: str, *, maxlen: int = 100_000, job_ttl_s: int = 30 * 86400,
                 block_ms: int = 1000) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url, decode_responses=True)
        self.stream = f"{prefix}:events"
        self.counter = f"{prefix}:events:seq"
        self.prefix = prefix
        self.maxlen = maxlen
        self.job_ttl_s = job_ttl_s
        self.block_ms = block_ms
        self._append = self.redis.register_script(_APPEND_SCRIPT)

    def _job_stream(self, job_id: uuid.UUID) -> str:
        return f"{self.prefix}:events:job:{job_id}"

    async def commit_with(self, session: AsyncSession, events: Sequence[PendingEvent]) -> list[Event]:
        await session.commit()
        out = []
        for e in events:
            seq = await self._append(
                keys=[self.stream, self.counter, self._job_stream(e.job_id)],
                args=[str(e.job_id), str(e.user_id), e.event, json.dumps(e.payload), self.maxlen, self.job_ttl_s],
            )
            out.append(Event.of(int(seq), e))
        return out

    @staticmethod
    def _event(entry_id: str, fields: dict[str, str]) -> Event:
        seq = int(entry_id.split("-", 1)[0])
        return Event(seq, uuid.UUID(fields["job_id"]), uuid.UUID(fields["user_id"]), fields["event"],
                     {**json.loads(fields["payload"]), "seq": seq})

    async def read_job(self, job_id: uuid.UUID, after: int = 0) -> list[Event]:
        entries = await self.redis.xrange(self._job_stream(job_id), min=f"{after + 1}-0", max="+")
        return [self._event(i, f) for i, f in entries]

    async def tail_seq(self) -> int:
        newest = await self.redis.xrevrange(self.stream, max="+", min="-", count=1)
        return int(newest[0][0].split("-", 1)[0]) if newest else 0

    async def follow(self, after: int | None = None) -> AsyncIterator[list[Event]]:
        last_id = f"{await self.tail_seq() if after is None else after}-0"
        while True:
            reply = await self.redis.xread({self.stream: last_id}, count=1000, block=self.block_ms)
            for _stream, entries in reply or ():
                if entries:
                    last_id = entries[-1][0]
                    yield [self._event(i, f) for i, f in entries]

    async def close(self) -> None:
        await self.redis.aclose()


def event_log_from_settings(settings: Settings) -> EventLog:
    """The one place that picks the storage: Redis when configured, else the SQL table."""
    if settings.redis_url:
        return RedisEventLog(settings.redis_url, settings.redis_prefix)
    return SqlEventLog(postgres=settings.is_postgres, poll_interval=settings.event_poll_interval_s)
