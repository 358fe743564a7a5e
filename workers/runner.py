"""Running one job attempt: the state machine around a registered task body.

Huey tasks are synchronous and run in Huey's worker threads, while the data layer is async (SQLModel
``AsyncSession`` on aiosqlite/asyncpg, redis.asyncio). An async engine's connections belong to the event
loop that opened them, so the worker process keeps exactly one loop, in its own thread
(:class:`DataLoop`), which owns the engine and the event-log client. Task threads hand it coroutines with
``asyncio.run_coroutine_threadsafe`` and wait for the answer. Blocking work (yt-dlp, ffmpeg, demucs)
stays in the task thread, so the data loop is never blocked and all threads share one connection pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from core import jobs
from core.events import EventLog
from core.progress import BadInput, JobCancelled, TransientError
from core.settings import Settings
from data.db import session_scope
from data.files import FileStore
from data.models import Job
from workers import tasks
from workers.registry import JobContext, handler_for

log = logging.getLogger("stemforge.worker")

T = TypeVar("T")

# Faults worth another attempt. Anything else unexpected is a bug or a bad environment: fail with a sentence.
TRANSIENT: tuple[type[BaseException], ...] = (TransientError, ConnectionError, TimeoutError)
# A progress point that changed nothing still looks for a cancel, at most this often.
CANCEL_CHECK_S = 0.5


class WorkerStopping(Exception):
    """Raised from the progress callback while the worker shuts down: the job goes back to the queue."""


class DataLoop:
    """One asyncio loop in a daemon thread; :meth:`run` executes a coroutine there from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="data-loop", daemon=True)

    def start(self) -> DataLoop:
        self.thread.start()
        return self

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def generic_error(kind: str) -> str:
    return f"Something went wrong while running this {kind} job. Please try again; if it keeps failing, " \
           "the server log has the details."


class _Progress:
    """The ``progress(pct, msg)`` callback of one attempt: integer, monotonic, announced only on change."""

    def __init__(self, runner: JobRunner, claim: jobs.Claim) -> None:
        self.runner = runner
        self.claim = claim
        self.last = 0
        self.message = "Starting"
        self.checked_at = time.monotonic()

    def __call__(self, percent: float, message: str = "") -> None:
        if self.runner.stopping.is_set():
            raise WorkerStopping()
        pct = max(self.last, min(100, int(percent)))
        message = (message or self.message)[:500]
        now = time.monotonic()
        if pct == self.last and message == self.message:
            if now - self.checked_at >= CANCEL_CHECK_S:
                self.checked_at = now
                if not self.runner.db(jobs.still_owned, self.claim):
                    raise JobCancelled()
            return
        if not self.runner.db_log(jobs.report_progress, self.claim, pct, message):
            raise JobCancelled()
        self.last, self.message, self.checked_at = pct, message, now


class JobRunner:
    def __init__(self, settings: Settings, data: DataLoop, events: EventLog, store: FileStore,
                 worker_id: str, enqueue: Callable[[str, uuid.UUID, float | None], None] = tasks.enqueue) -> None:
        self.settings = settings
        self.data = data
        self.events = events
        self.store = store
        self.worker_id = worker_id
        self.enqueue = enqueue
        self.stopping = threading.Event()
        self._active: dict[uuid.UUID, jobs.Claim] = {}
        self._lock = threading.Lock()

    # --- bridges to the data loop ---------------------------------------------------------------

    def run_async(self, coro: Awaitable[T]) -> T:
        return self.data.run(coro)

    def db(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """``fn(session, *args)`` on the data loop, in a fresh session."""

        async def call() -> T:
            async with session_scope() as session:
                return await fn(session, *args)

        return self.data.run(call())

    def db_log(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """``fn(session, event_log, *args)``: the transitions of core/jobs.py."""

        async def call() -> T:
            async with session_scope() as session:
                return await fn(session, self.events, *args)

        return self.data.run(call())

    # --- running ---------------------------------------------------------------------------------

    def active_jobs(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._active)

    def run(self, job_id: uuid.UUID) -> None:
        claim = self.db_log(jobs.start_attempt, job_id, self.worker_id)
        if claim is None:
            log.info("job %s is not queued any more (cancelled or taken); skipping", job_id)
            return
        with self._lock:
            self._active[job_id] = claim
        try:
            self._execute(claim)
        finally:
            with self._lock:
                self._active.pop(job_id, None)

    def _execute(self, claim: jobs.Claim) -> None:
        handler = handler_for(claim.kind)
        if handler is None:
            self.db_log(jobs.fail, claim, f"This server cannot run {claim.kind} jobs yet", 0)
            return
        progress = _Progress(self, claim)
        ctx = JobContext(
            job_id=claim.job_id, user_id=claim.user_id, track_id=claim.track_id, kind=claim.kind,
            params=claim.params, attempt=claim.attempt, progress=progress, store=self.store,
            settings=self.settings, run=self.run_async,
        )
        log.info("job %s (%s) attempt %d started", claim.job_id, claim.kind, claim.attempt)
        try:
            result = handler(ctx)
        except JobCancelled:
            self._stopped_by_others(ctx)
        except WorkerStopping:
            self._cleanup(ctx)
            if self.db_log(jobs.requeue_interrupted, claim):
                self.enqueue(claim.kind, claim.job_id, None)
            log.info("job %s handed back to the queue: worker stopping", claim.job_id)
        except BadInput as exc:
            self._cleanup(ctx)
            self.db_log(jobs.fail, claim, str(exc) or generic_error(claim.kind), progress.last)
            log.info("job %s failed on bad input: %s", claim.job_id, exc)
        except TRANSIENT as exc:
            self._cleanup(ctx)
            self._retry_or_fail(claim, exc, progress.last)
        except Exception:
            log.exception("job %s (%s) crashed", claim.job_id, claim.kind)
            self._cleanup(ctx)
            self.db_log(jobs.fail, claim, generic_error(claim.kind), progress.last)
        else:
            if self.db_log(jobs.complete, claim, result or {}):
                log.info("job %s completed", claim.job_id)
            else:
                self._stopped_by_others(ctx)

    def _stopped_by_others(self, ctx: JobContext) -> None:
        """The job stopped being ours: cancelled by its owner (remove partial files), or re-queued by
        recovery after our heartbeat went stale (then another worker may be using the files: keep them)."""
        job = self.db(_load_job, ctx.job_id)
        if job is None or job.status == jobs.CANCELLED:
            self._cleanup(ctx)
            log.info("job %s cancelled; partial files removed", ctx.job_id)
        else:
            log.warning("job %s was taken away from this worker (now %s)", ctx.job_id, job.status)

    def _retry_or_fail(self, claim: jobs.Claim, exc: BaseException, progress: int) -> None:
        reason = (str(exc) or type(exc).__name__).rstrip(".")
        max_attempts = self.settings.job_max_attempts
        if claim.attempt < max_attempts:
            delay = jobs.retry_delay(self.settings.job_retry_base_s, claim.attempt)
            if self.db_log(jobs.retry_later, claim, reason, delay, max_attempts):
                self.enqueue(claim.kind, claim.job_id, delay)
            log.info("job %s: transient fault (%s); retry in %.1f s", claim.job_id, reason, delay)
        else:
            error = f"{reason}. Gave up after {claim.attempt} attempts; please try again later."
            self.db_log(jobs.fail, claim, error, progress)
            log.info("job %s failed after %d attempts: %s", claim.job_id, claim.attempt, reason)

    def _cleanup(self, ctx: JobContext) -> None:
        self.store.remove_tree(ctx.job_dir)
        for path in ctx.partial_paths:
            _remove_inside(self.store, path)

    # --- liveness ----------------------------------------------------------------------------------

    def beat(self) -> None:
        self.db(jobs.heartbeat, self.worker_id, self.active_jobs())


async def _load_job(session: Any, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id, populate_existing=True)


def _remove_inside(store: FileStore, path: Path) -> None:
    resolved = path.resolve()
    if store.root not in resolved.parents:
        return
    if resolved.is_dir():
        store.remove_tree(resolved)
    else:
        resolved.unlink(missing_ok=True)
