"""One job model and one state machine for every slow operation (download, processing, analysis).

    queued ──start──► downloading | processing ──► completed
      ▲                      │    │                failed
      └── retry (backoff) ───┘    └──────────────► cancelled   (also straight from queued)

Every transition is a conditional UPDATE (compare-and-set on status, worker and attempt), so a worker
that lost its job (cancelled by the user, re-queued by recovery after a missed heartbeat) can never
overwrite what happened meanwhile; it learns from the ``False`` it gets back and stops. Every transition
is appended to the event log (core/events.py) with the payloads of the /socket contract:

* ``job:progress``  {job_id, status, progress, message, seq}
* ``job:completed`` {job_id, job_type, track_id, result, seq}
* ``job:failed``    {job_id, job_type, error, seq}

A cancelled job ends with a ``job:progress`` whose status is ``cancelled``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from core.events import EventLog, PendingEvent
from data.models import Job, Track, utcnow
from data.pagination import Page

KINDS = ("download", "processing", "analysis")
QUEUED, DOWNLOADING, PROCESSING = "queued", "downloading", "processing"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
RUNNING = (DOWNLOADING, PROCESSING)
FINISHED = (COMPLETED, FAILED, CANCELLED)
STATUSES = (QUEUED, *RUNNING, *FINISHED)
ACTIVE = (QUEUED, *RUNNING)
RETRYABLE = (FAILED, CANCELLED)
# Filter names that stand for several statuses: ``active`` (not finished yet) and ``running``.
STATUS_GROUPS: dict[str, tuple[str, ...]] = {"active": ACTIVE, "running": RUNNING}
# The params key a retried job's copy carries: the id of the job it repeats.
RETRY_OF = "retry_of"

WORKER_STOPPED = "The worker running this job stopped; please start the job again"


def running_status(kind: str) -> str:
    """The status a running job shows: downloads download, everything else processes."""
    return DOWNLOADING if kind == "download" else PROCESSING


def retry_delay(base_s: float, attempt: int) -> float:
    """Exponential backoff: base, 2*base, 4*base ... after attempt 1, 2, 3 ..."""
    return base_s * (2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Claim:
    """One attempt of one job by one worker: the key of every worker-side transition."""

    job_id: uuid.UUID
    user_id: uuid.UUID
    track_id: uuid.UUID | None
    kind: str
    params: dict[str, Any]
    worker_id: str
    attempt: int

    @property
    def status(self) -> str:
        return running_status(self.kind)


# --- event payloads -------------------------------------------------------------------------------


def _progress_event(job_id: uuid.UUID, user_id: uuid.UUID, status: str, progress: int,
                    message: str) -> PendingEvent:
    return PendingEvent(job_id, user_id, "job:progress",
                        {"job_id": str(job_id), "status": status, "progress": progress, "message": message})


def _completed_event(claim: Claim, result: dict[str, Any]) -> PendingEvent:
    return PendingEvent(claim.job_id, claim.user_id, "job:completed", {
        "job_id": str(claim.job_id), "job_type": claim.kind,
        "track_id": str(claim.track_id) if claim.track_id else None, "result": result,
    })


def _failure_events(job_id: uuid.UUID, user_id: uuid.UUID, kind: str, error: str,
                    progress: int) -> list[PendingEvent]:
    return [_progress_event(job_id, user_id, FAILED, progress, "Failed"),
            PendingEvent(job_id, user_id, "job:failed", {"job_id": str(job_id), "job_type": kind, "error": error})]


# --- the user's side: create, read, list, cancel --------------------------------------------------


async def create_job(session: AsyncSession, events: EventLog, user_id: uuid.UUID, kind: str,
                     track_id: uuid.UUID | None, params: dict[str, Any] | None = None) -> Job:
    """A new ``queued`` job (the caller enqueues it once this returns)."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown job kind {kind!r}")
    job = Job(user_id=user_id, kind=kind, track_id=track_id, params=params or {}, message="Waiting for a worker")
    session.add(job)
    await events.commit_with(session, [_progress_event(job.id, user_id, QUEUED, 0, job.message)])
    return job


async def get_job_for_user(session: AsyncSession, user_id: uuid.UUID, job_id: uuid.UUID,
                           kind: str | None = None) -> Job:
    """The job (of ``kind``, when given), or NotFound: someone else's job, or one of another kind asked
    for under a kind's own route, is reported exactly like a missing one."""
    job = await session.get(Job, job_id, populate_existing=True)
    if job is None or job.user_id != user_id or (kind is not None and job.kind != kind):
        raise NotFound("job")
    return job


def statuses_of(status: str) -> tuple[str, ...]:
    """The statuses a status filter stands for: one status, or a group (``active``, ``running``)."""
    return STATUS_GROUPS.get(status, (status,))


def _filters(user_id: uuid.UUID, kind: str | None, status: str | None, track_id: uuid.UUID | None) -> list[Any]:
    where: list[Any] = [col(Job.user_id) == user_id]
    if kind:
        where.append(col(Job.kind) == kind)
    if status:
        where.append(col(Job.status).in_(statuses_of(status)))
    if track_id is not None:
        where.append(col(Job.track_id) == track_id)
    return where


async def list_jobs(session: AsyncSession, user_id: uuid.UUID, *, kind: str | None = None,
                    status: str | None = None, page: int = 1, page_size: int = 20,
                    track_id: uuid.UUID | None = None) -> Page[Job]:
    """The user's jobs, newest first; ``status`` may be a group name of ``STATUS_GROUPS``."""
    where = _filters(user_id, kind, status, track_id)
    total = (await session.exec(select(func.count()).select_from(Job).where(*where))).one()
    rows = await session.exec(
        select(Job).where(*where).order_by(col(Job.created_at).desc(), col(Job.id))
        .offset((page - 1) * page_size).limit(page_size)
    )
    return Page(list(rows.all()), page, page_size, int(total))


@dataclass(frozen=True)
class JobListing:
    """A job and the title of its track (empty when it has none): one row of the jobs page."""

    job: Job
    track_title: str
    track_artist: str


async def list_jobs_with_tracks(session: AsyncSession, user_id: uuid.UUID, *, kind: str | None = None,
                                status: str | None = None, track_id: uuid.UUID | None = None,
                                limit: int = 50) -> list[JobListing]:
    """The user's newest jobs with their tracks' titles, in one query (an outer join on ``Track``)."""
    rows = await session.exec(  # type: ignore[call-overload]
        select(Job, Track.title, Track.artist)
        .outerjoin(Track, col(Track.id) == col(Job.track_id))
        .where(*_filters(user_id, kind, status, track_id))
        .order_by(col(Job.created_at).desc(), col(Job.id))
        .limit(limit)
    )
    return [JobListing(job, title or "", artist or "") for job, title, artist in rows.all()]


async def job_to_retry(session: AsyncSession, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """The user's failed or cancelled job, about to be started again as a new job.

    Someone else's job is NotFound; a job in any other state is Conflict ``job_not_retryable``; a job whose
    retry is still queued or running is Conflict ``job_already_retried`` (a second click starts nothing twice).
    """
    job = await get_job_for_user(session, user_id, job_id)
    if job.status not in RETRYABLE:
        what = "is still " + job.status if job.status in ACTIVE else "has completed"
        raise Conflict(f"Only a failed or cancelled job can be retried; this one {what}", code="job_not_retryable")
    active = await session.exec(select(Job.id, Job.status, Job.params).where(
        *_filters(user_id, job.kind, "active", job.track_id)))
    for other_id, other_status, params in active.all():
        if (params or {}).get(RETRY_OF) == str(job.id):
            raise Conflict(f"This job was retried already; its retry is {other_status} (job {other_id}): follow "
                           "that one",
                           code="job_already_retried")
    return job


async def cancel_job(session: AsyncSession, events: EventLog, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """Cancel: a queued job never starts; a running one stops at its next progress point.

    The status turns ``cancelled`` here, at once; the worker notices at its next progress call (its
    conditional update finds the job no longer running), stops, and removes the partial files.
    """
    job = await get_job_for_user(session, user_id, job_id)
    if job.status in FINISHED:
        raise Conflict(f"The job has already {job.status}; there is nothing to cancel", code="job_finished")
    now = utcnow()
    result = await session.exec(  # type: ignore[call-overload]
        _update().where(col(Job.id) == job_id, col(Job.status).in_((QUEUED, *RUNNING)))
        .values(status=CANCELLED, message="Cancelled", finished_at=now, updated_at=now)
    )
    if result.rowcount != 1:  # finished in the meantime
        await session.rollback()
        job = await get_job_for_user(session, user_id, job_id)
        raise Conflict(f"The job has already {job.status}; there is nothing to cancel", code="job_finished")
    await events.commit_with(session, [_progress_event(job.id, user_id, CANCELLED, job.progress, "Cancelled")])
    return await get_job_for_user(session, user_id, job_id)


async def last_seq(events: EventLog, job_id: uuid.UUID) -> int:
    got = await events.read_job(job_id)
    return got[-1].seq if got else 0


# --- the worker's side ------------------------------------------------------------------------------


async def start_attempt(session: AsyncSession, events: EventLog, job_id: uuid.UUID, worker_id: str) -> Claim | None:
    """Take a queued job: ``None`` when it is not queued any more (cancelled, or taken by another worker)."""
    job = await session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != QUEUED:
        return None
    now = utcnow()
    status = running_status(job.kind)
    result = await session.exec(  # type: ignore[call-overload]
        _update().where(col(Job.id) == job_id, col(Job.status) == QUEUED, col(Job.attempts) == job.attempts)
        .values(status=status, attempts=job.attempts + 1, worker_id=worker_id, heartbeat_at=now, progress=0,
                message="Starting", error=None, started_at=job.started_at or now, updated_at=now)
    )
    if result.rowcount != 1:
        await session.rollback()
        return None
    claim = Claim(job.id, job.user_id, job.track_id, job.kind, dict(job.params or {}), worker_id, job.attempts + 1)
    await events.commit_with(session, [_progress_event(job.id, job.user_id, status, 0, "Starting")])
    return claim


def _update() -> Any:
    """A bulk UPDATE that leaves objects loaded in the session alone: callers read them as they were."""
    return update(Job).execution_options(synchronize_session=False)


def _owned(claim: Claim) -> list[Any]:
    return [col(Job.id) == claim.job_id, col(Job.status) == claim.status, col(Job.worker_id) == claim.worker_id,
            col(Job.attempts) == claim.attempt]


async def _transition(session: AsyncSession, events: EventLog, claim: Claim, values: dict[str, Any],
                      *announce: PendingEvent) -> bool:
    now = utcnow()
    result = await session.exec(  # type: ignore[call-overload]
        _update().where(*_owned(claim)).values(**values, heartbeat_at=now, updated_at=now)
    )
    if result.rowcount != 1:
        await session.rollback()
        return False
    await events.commit_with(session, list(announce))
    return True


async def report_progress(session: AsyncSession, events: EventLog, claim: Claim, progress: int,
                          message: str) -> bool:
    """Store and announce progress; False when the job is no longer this attempt's (cancelled, recovered)."""
    return await _transition(session, events, claim, {"progress": progress, "message": message},
                             _progress_event(claim.job_id, claim.user_id, claim.status, progress, message))


async def still_owned(session: AsyncSession, claim: Claim) -> bool:
    """Cheap check for progress points that changed nothing (no write, no event)."""
    found = await session.exec(select(Job.id).where(*_owned(claim)))
    return found.first() is not None


async def complete(session: AsyncSession, events: EventLog, claim: Claim, result: dict[str, Any]) -> bool:
    """Success: a last ``job:progress`` at 100 %, then ``job:completed`` with the result."""
    return await _transition(
        session, events, claim,
        {"status": COMPLETED, "progress": 100, "message": "Done", "result": result, "finished_at": utcnow()},
        _progress_event(claim.job_id, claim.user_id, COMPLETED, 100, "Done"), _completed_event(claim, result),
    )


async def fail(session: AsyncSession, events: EventLog, claim: Claim, error: str, progress: int = 0) -> bool:
    """Final failure: ``error`` is a sentence a person can act on, never a traceback."""
    return await _transition(
        session, events, claim,
        {"status": FAILED, "error": error, "message": "Failed", "finished_at": utcnow()},
        *_failure_events(claim.job_id, claim.user_id, claim.kind, error, progress),
    )


async def retry_later(session: AsyncSession, events: EventLog, claim: Claim, reason: str, delay_s: float,
                      max_attempts: int) -> bool:
    """Back to ``queued`` after a transient fault; the caller enqueues it again with ``delay_s``."""
    message = (f"Temporary problem ({reason}); retrying in {delay_s:g} s "
               f"(attempt {claim.attempt + 1} of {max_attempts})")[:500]
    return await _transition(
        session, events, claim, {"status": QUEUED, "worker_id": None, "message": message},
        _progress_event(claim.job_id, claim.user_id, QUEUED, 0, message),
    )


async def requeue_interrupted(session: AsyncSession, events: EventLog, claim: Claim) -> bool:
    """The worker is shutting down: give the attempt back (it does not count) for the next worker."""
    message = "Worker restarting; the job will continue shortly"
    return await _transition(
        session, events, claim,
        {"status": QUEUED, "worker_id": None, "message": message, "attempts": claim.attempt - 1},
        _progress_event(claim.job_id, claim.user_id, QUEUED, 0, message),
    )


async def heartbeat(session: AsyncSession, worker_id: str, job_ids: list[uuid.UUID]) -> None:
    """Proof of life for the jobs this worker runs."""
    if not job_ids:
        return
    await session.exec(  # type: ignore[call-overload]
        _update().where(col(Job.id).in_(job_ids), col(Job.worker_id) == worker_id,
                          col(Job.status).in_(RUNNING)).values(heartbeat_at=utcnow())
    )
    await session.commit()


@dataclass(frozen=True)
class Recovered:
    job_id: uuid.UUID
    kind: str
    requeued: bool


async def recover_orphans(session: AsyncSession, events: EventLog, *, stale_after_s: float, max_attempts: int,
                          worker_gone: Callable[[str], bool]) -> list[Recovered]:
    """Running jobs whose worker is gone: re-queued while attempts remain, else failed "worker stopped".

    A worker is gone when ``worker_gone(worker_id)`` says so (a dead process on this host) or when it has
    not stamped the job's heartbeat for ``stale_after_s``. The caller enqueues the re-queued ones.
    """
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    rows = (await session.exec(select(Job).where(col(Job.status).in_(RUNNING)))).all()
    out: list[Recovered] = []
    for job in rows:
        stale = job.heartbeat_at is None or job.heartbeat_at < cutoff
        if not (stale or (job.worker_id and worker_gone(job.worker_id))):
            continue
        claim = Claim(job.id, job.user_id, job.track_id, job.kind, dict(job.params or {}), job.worker_id or "",
                      job.attempts)
        owned = [col(Job.id) == job.id, col(Job.status) == job.status, col(Job.attempts) == job.attempts]
        if job.worker_id is None:
            owned.append(col(Job.worker_id).is_(None))
        else:
            owned.append(col(Job.worker_id) == job.worker_id)
        now = utcnow()
        if job.attempts < max_attempts:
            message = f"The worker stopped; retrying (attempt {job.attempts + 1} of {max_attempts})"
            values: dict[str, Any] = {"status": QUEUED, "worker_id": None, "message": message, "progress": 0}
            pending = [_progress_event(job.id, job.user_id, QUEUED, 0, message)]
        else:
            values = {"status": FAILED, "error": WORKER_STOPPED, "message": "Failed", "finished_at": now}
            pending = _failure_events(job.id, job.user_id, job.kind, WORKER_STOPPED, job.progress)
        result = await session.exec(_update().where(*owned).values(**values, updated_at=now))  # type: ignore[call-overload]
        if result.rowcount != 1:
            await session.rollback()
            continue
        await events.commit_with(session, pending)
        out.append(Recovered(claim.job_id, claim.kind, job.attempts < max_attempts))
    return out
