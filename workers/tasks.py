"""One Huey task, ``run_job(job_id)``, registered on every kind's queue; it dispatches by kind.

Web processes only enqueue (the body never runs there); a worker process installs its runner with
:func:`set_runner` before its consumers start.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING

from huey.api import TaskWrapper

from workers.huey_app import queue_for

if TYPE_CHECKING:
    from workers.runner import JobRunner

_runner: JobRunner | None = None
_tasks: dict[str, TaskWrapper] = {}
_lock = threading.Lock()


def set_runner(runner: JobRunner | None) -> None:
    global _runner
    _runner = runner


def run_job(job_id: str) -> None:
    """The task body: hand the job to this worker's runner."""
    if _runner is None:
        raise RuntimeError("run_job executed outside a worker process")
    _runner.run(uuid.UUID(job_id))


def task_for(kind: str) -> TaskWrapper:
    with _lock:
        if kind not in _tasks:
            _tasks[kind] = queue_for(kind).task(name="run_job")(run_job)
        return _tasks[kind]


def enqueue(kind: str, job_id: uuid.UUID, delay_s: float | None = None) -> None:
    task = task_for(kind)
    if delay_s:
        task.schedule(args=(str(job_id),), delay=delay_s)
    else:
        task(str(job_id))


async def enqueue_async(kind: str, job_id: uuid.UUID, delay_s: float | None = None) -> None:
    """From async code: the queue storage is blocking I/O (SQLite file or Redis), so it runs in a thread."""
    await asyncio.to_thread(enqueue, kind, job_id, delay_s)
