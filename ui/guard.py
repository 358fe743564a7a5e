"""Click handlers that run once per gesture: a double (or triple) click starts one job, not three."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

# Clicks this soon after the handler finished are taken as part of the same gesture.
HOLD_S = 1.0


def guarded(handler: Callable[..., Any], hold_s: float = HOLD_S) -> Callable[..., Any]:
    """``handler`` that ignores calls while an earlier one runs and for ``hold_s`` seconds after it ends.

    NiceGUI delivers each click as its own event, so three quick clicks on "Separate" would otherwise
    queue three separations before the first notification even shows.
    """
    busy = False

    def release() -> None:
        nonlocal busy
        busy = False

    async def run(*args: Any) -> None:
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        finally:
            asyncio.get_running_loop().call_later(hold_s, release)

    return run
