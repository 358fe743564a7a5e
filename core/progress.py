"""The contract between long-running services and whoever runs them (a worker job, the CLI).

A service takes a ``progress(percent, message)`` callback and calls it at natural
points. The runner may raise ``JobCancelled`` from inside that callback to stop the
service there. Services raise ``BadInput`` for faults that retrying cannot fix (the
job fails at once) and ``TransientError`` for faults worth retrying with backoff.
"""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    def __call__(self, percent: float, message: str = "") -> None: ...


def no_progress(percent: float, message: str = "") -> None:
    """For callers that do not report progress."""


class JobCancelled(Exception):
    """Raised from a progress callback when the user cancelled the job."""


class BadInput(Exception):
    """A fault in the input itself (corrupt audio, unknown model, 404 source): fail now, do not retry.

    The message is shown to the user, so it must say what is wrong and, where possible, what to do.
    """


class TransientError(Exception):
    """A fault that may pass (network hiccup, 5xx, rate limit): retry with backoff."""


def scaled(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    """Map a sub-step's 0-100 onto [start, end] of the caller's range."""

    def inner(percent: float, message: str = "") -> None:
        progress(start + (end - start) * max(0.0, min(100.0, percent)) / 100.0, message)

    return inner
