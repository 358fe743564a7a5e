"""The handler registry: a feature adds a job kind by registering its task body, nothing else.

    from workers.registry import JobContext, register

    @register("analysis")
    def analyse(ctx: JobContext) -> dict:
        ...                                   # call a core/ service with ctx.progress
        return {"tempo": 120.0}               # becomes Job.result and the job:completed payload

The runner (workers/runner.py) owns everything around the body: the state machine, retries, the event
log, cancellation and removing partial files. A body signals faults with the exceptions of
core/progress.py: ``BadInput`` fails the job at once with its message, ``TransientError`` retries with
backoff, anything else fails with a generic sentence (the traceback goes to the log only).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from core.progress import ProgressFn
from core.settings import Settings
from data.files import FileStore

T = TypeVar("T")


@dataclass
class JobContext:
    """What a task body gets: the job's data, the progress callback, the file store and the settings."""

    job_id: uuid.UUID
    user_id: uuid.UUID
    track_id: uuid.UUID | None
    kind: str
    params: dict[str, Any]
    attempt: int
    progress: ProgressFn  # raises core.progress.JobCancelled when the job was cancelled
    store: FileStore
    settings: Settings
    # Runs a coroutine on the worker's data loop (the async database layer) and returns its result.
    run: Callable[[Awaitable[T]], T]
    partial_paths: list[Path] = field(default_factory=list)

    @property
    def job_dir(self) -> Path:
        """``stems/<job_id>/``: removed automatically when the job fails or is cancelled."""
        return self.store.job_dir(self.job_id)

    def add_partial(self, path: Path) -> Path:
        """Declare a file or folder to delete if the job does not complete."""
        self.partial_paths.append(path)
        return path


Handler = Callable[[JobContext], dict[str, Any]]
_HANDLERS: dict[str, Handler] = {}


def register(kind: str) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return decorator


def handler_for(kind: str) -> Handler | None:
    import workers.handlers  # noqa: F401  (importing the package registers every built-in handler)

    return _HANDLERS.get(kind)
