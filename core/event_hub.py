"""The web process's one EventHub: follows the job-event log from its tail and fans events out.

Subscribers (a /socket channel, a NiceGUI page) each get their own bounded queue, fed synchronously as
the hub reads a batch, so a slow subscriber never holds up the others. A subscriber that falls more than
``maxsize`` events behind is cut off (``overflowed``); it can catch up from the log with ``since``.

Catch-up (``since``, late joins) reads the durable log directly (:meth:`EventHub.history`); live delivery
comes from the one follower. A subscriber subscribes *before* it reads history and drops live events
whose ``seq`` it has already seen, so nothing falls into the gap between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict

from core.events import Event, EventLog

log = logging.getLogger("stemforge.events")


class Subscription:
    """Live events for one job (or one user). ``await get()`` returns None once it was cut off or closed."""

    def __init__(self, hub: EventHub, key: tuple[str, uuid.UUID], maxsize: int) -> None:
        self._hub = hub
        self.key = key
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize + 1)
        self.maxsize = maxsize
        self.overflowed = False
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.maxsize:
            self.overflowed = True
            self._finish()
            return
        self.queue.put_nowait(event)

    def _finish(self) -> None:
        self.closed = True
        self._hub._drop(self)
        self.queue.put_nowait(None)  # the +1 slot: always room for the end marker

    async def get(self) -> Event | None:
        return await self.queue.get()

    def close(self) -> None:
        if not self.closed:
            self._finish()


class EventHub:
    def __init__(self, events: EventLog, *, queue_size: int = 1000, retry_s: float = 1.0) -> None:
        self.events = events
        self.queue_size = queue_size
        self.retry_s = retry_s
        self._subs: dict[tuple[str, uuid.UUID], set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.last_seq: int | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def ready(self) -> None:
        """Wait until the follower has found the log's tail (tests and benchmarks start after this)."""
        await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        await self.events.close()

    def subscribe(self, job_id: uuid.UUID) -> Subscription:
        return self._add(("job", job_id))

    def subscribe_user(self, user_id: uuid.UUID) -> Subscription:
        """Every event of one user's jobs (the NiceGUI jobs page)."""
        return self._add(("user", user_id))

    async def history(self, job_id: uuid.UUID, after: int = 0) -> list[Event]:
        return await self.events.read_job(job_id, after)

    def _add(self, key: tuple[str, uuid.UUID]) -> Subscription:
        sub = Subscription(self, key, self.queue_size)
        self._subs[key].add(sub)
        return sub

    def _drop(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]

    def _dispatch(self, event: Event) -> None:
        for key in (("job", event.job_id), ("user", event.user_id)):
            for sub in list(self._subs.get(key, ())):
                sub._offer(event)

    async def _run(self) -> None:
        while True:
            try:
                if self.last_seq is None:
                    self.last_seq = await self.events.tail_seq()
                self._ready.set()
                async for batch in self.events.follow(self.last_seq):
                    for event in batch:
                        self._dispatch(event)
                        self.last_seq = event.seq
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the job-event log failed; retrying in %.0f s", self.retry_s)
                await asyncio.sleep(self.retry_s)
