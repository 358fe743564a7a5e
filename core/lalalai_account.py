"""A user's lalal.ai account as StemForge sees it: the stored license key, the jobs that ran on it,
and the quota and cancel actions of ``/api/lalalai``.

The key is stored encrypted (``UserSettings.lalalai_key_encrypted``, core/security.SecretBox) and
only ever decrypted here, for a request or a job that talks to lalal.ai. A processing job on the
lalal.ai engine records in its params the task id lalal.ai gave it (``lalalai_task_id``), the minutes
that task costs (``lalalai_minutes``) and a fingerprint of the key it ran on (``lalalai_key_id``, an
HMAC: the key itself is never stored in clear), so

* ``POST /api/lalalai/cancel`` finds the job of a task id and ends it ``cancelled``;
* ``GET /api/lalalai/quota`` can say how many minutes StemForge used on the key: lalal.ai itself only
  reports the minutes left.

Cancelling ends the StemForge jobs first, then asks lalal.ai: the worker running a job sees the
cancellation at its next check and cancels its task on lalal.ai too, so a task is stopped even when
lalal.ai cannot be reached at the moment of the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import jobs
from core.errors import Conflict, StemForgeError
from core.events import EventLog
from core.processing import KIND, LALALAI
from core.progress import BadInput, TransientError
from core.security import SecretBox
from core.separation import lalalai as cloud
from core.settings import Settings
from data.models import Job, UserSettings

T = TypeVar("T")

KEY_HELP = ('Set your lalal.ai license key on the Settings page (/users/settings, "lalal.ai" card) or with '
            'PUT /users/settings {"lalalai_key": "..."}.')
# Jobs whose lalal.ai minutes count as used: lalal.ai charges when the split starts.
_CHARGED_STATUSES = (jobs.COMPLETED, *jobs.RUNNING)


class LalalaiUnavailable(StemForgeError):
    """lalal.ai could not be reached or answered 5xx / 429: try again later."""

    code = "lalalai_unavailable"
    status = 503


class LalalaiRefused(StemForgeError):
    """lalal.ai refused the request for another reason than the key."""

    code = "lalalai_error"
    status = 502


class TaskNotFound(StemForgeError):
    code = "not_found"
    status = 404


@dataclass(frozen=True)
class CancelOutcome:
    task_ids: list[str]  # the tasks stopped: by lalal.ai now, or by the worker of an ended job
    job_ids: list[uuid.UUID]  # the StemForge jobs ended ``cancelled``


def key_id(license_key: str, settings: Settings) -> str:
    """A fingerprint of the key (HMAC with the server's secret): tells keys apart, reveals nothing."""
    return hmac.new(settings.session_secret.encode(), license_key.encode(), hashlib.sha256).hexdigest()[:16]


async def license_key(session: AsyncSession, user_id: uuid.UUID, settings: Settings) -> str:
    """The user's lalal.ai license key in clear, or ``LalalaiKeyError`` (401 for a route, a failed job for a
    worker) saying where to set it."""
    row = await session.get(UserSettings, user_id)
    key = SecretBox(settings.fernet_key).decrypt(row.lalalai_key_encrypted) if row and row.lalalai_key_encrypted \
        else None
    if not key:
        # A key that no longer decrypts (the server's encryption key changed) is as good as none.
        raise cloud.LalalaiKeyError("No lalal.ai license key is set for your account. " + KEY_HELP)
    return key


async def _lalalai_jobs(session: AsyncSession, user_id: uuid.UUID, statuses: tuple[str, ...]) -> list[Job]:
    rows = await session.exec(select(Job).where(Job.user_id == user_id, Job.kind == KIND,
                                                col(Job.status).in_(statuses)).order_by(col(Job.created_at)))
    return [job for job in rows.all() if (job.params or {}).get("engine") == LALALAI]


async def active_jobs(session: AsyncSession, user_id: uuid.UUID, task_id: str | None = None) -> list[Job]:
    """The user's lalal.ai jobs that have not finished; with ``task_id``, only the one running that task."""
    found = await _lalalai_jobs(session, user_id, (jobs.QUEUED, *jobs.RUNNING))
    if task_id is None:
        return found
    return [job for job in found if (job.params or {}).get("lalalai_task_id") == task_id]


async def used_minutes(session: AsyncSession, user_id: uuid.UUID, key_fingerprint: str) -> float:
    """Minutes lalal.ai charged for this user's StemForge jobs on the key (completed or still running)."""
    total = 0.0
    for job in await _lalalai_jobs(session, user_id, _CHARGED_STATUSES):
        params = job.params or {}
        if params.get("lalalai_key_id") == key_fingerprint:
            total += float(params.get("lalalai_minutes") or 0.0)
    return total


async def call_lalalai(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (blocking) lalal.ai client call off the event loop, its faults as API errors: a refused key
    stays ``LalalaiKeyError`` (401), an outage is 503 ``lalalai_unavailable``, other refusals 502."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except cloud.LalalaiKeyError as exc:
        exc.message = f"{exc.message.removesuffix(cloud.KEY_HELP).rstrip()} {KEY_HELP}"
        raise
    except TransientError as exc:
        raise LalalaiUnavailable(str(exc)) from exc
    except BadInput as exc:
        raise LalalaiRefused(str(exc)) from exc


async def quota(session: AsyncSession, user_id: uuid.UUID, settings: Settings) -> cloud.Quota:
    """``GET /api/lalalai/quota``: lalal.ai's ``minutes_left`` with what StemForge used on the key."""
    key = await license_key(session, user_id, settings)
    used = await used_minutes(session, user_id, key_id(key, settings))
    found = await call_lalalai(cloud.quota, key, used, settings=settings)
    return cloud.Quota(quota_minutes=round(found.quota_minutes, 2), used_minutes=round(found.used_minutes, 2),
                       remaining_minutes=round(found.remaining_minutes, 2))


async def _end_jobs(session: AsyncSession, events: EventLog, user_id: uuid.UUID, found: list[Job]) -> list[Job]:
    """Cancel each job (the worker running one stops at its next check and cancels its lalal.ai task)."""
    ended = []
    for job in found:
        try:
            await jobs.cancel_job(session, events, user_id, job.id)
        except Conflict:  # it finished in the meantime
            continue
        ended.append(job)
    return ended


async def cancel_task(session: AsyncSession, events: EventLog, user_id: uuid.UUID, settings: Settings,
                      task_id: str) -> CancelOutcome:
    """``POST /api/lalalai/cancel``: end the job running ``task_id``, then cancel the task on lalal.ai.

    A task lalal.ai does not know as running and no job of this user runs is ``NotFound``.
    """
    key = await license_key(session, user_id, settings)
    ended = await _end_jobs(session, events, user_id, await active_jobs(session, user_id, task_id))
    cancelled = await call_lalalai(cloud.cancel, key, task_id, settings=settings)
    if not cancelled and not ended:
        raise TaskNotFound(f"No running lalal.ai task of yours has the id {task_id!r}")
    # An ended job's task counts as stopped even if its worker got to cancel it on lalal.ai first.
    return CancelOutcome([task_id], [job.id for job in ended])


async def cancel_all(session: AsyncSession, events: EventLog, user_id: uuid.UUID,
                     settings: Settings) -> CancelOutcome:
    """``POST /api/lalalai/cancel-all``: end every unfinished lalal.ai job of the user (queued ones too),
    then cancel every running task of the key on lalal.ai."""
    key = await license_key(session, user_id, settings)
    ended = await _end_jobs(session, events, user_id, await active_jobs(session, user_id))
    task_ids = set(await call_lalalai(cloud.cancel_all, key, settings=settings))
    task_ids.update(str(job.params["lalalai_task_id"]) for job in ended if (job.params or {}).get("lalalai_task_id"))
    return CancelOutcome(sorted(task_ids), [job.id for job in ended])
