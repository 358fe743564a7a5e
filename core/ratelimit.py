"""Per-user rate limits: sliding-window counters, as the ``limits`` library defines them.

Memory (one web process) by default; Redis when configured, so that several web
processes share one budget per user. Redis goes through ``limits``; the memory
case is counted here in one step per request (``limits``' async memory storage
takes a lock, schedules an expiry task and reads the window twice per hit), with
the same arithmetic, so the verdict and the X-RateLimit-* figures are the same.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string


@dataclass(frozen=True)
class LimitState:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the window frees up

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    @property
    def reset_in(self) -> int:
        return max(0, math.ceil(self.reset_at - time.time()))


class MemoryWindows:
    """Sliding-window counters of this process, for one event loop.

    Each key keeps the hit count of its current fixed window and of the one before it; the
    previous window's count is weighted by the share of it still inside the sliding window
    (``limits``' "sliding window counter": the same keys, arithmetic, remaining and reset time).
    A hit is one synchronous step, so no lock is needed between requests of one event loop.
    """

    SWEEP_EVERY_S = 60.0

    def __init__(self) -> None:
        # key -> [window number, hits in it, hits in the window before, window length in seconds]
        self._windows: dict[str, list[int]] = {}
        self._next_sweep = time.time() + self.SWEEP_EVERY_S

    def hit(self, item: RateLimitItem, key: str, cost: int = 1) -> LimitState:
        now = time.time()
        expiry = item.get_expiry()
        limit = item.amount
        number = int(now / expiry)
        window = self._windows.get(key)
        if window is None or window[0] != number:
            previous = window[1] if window is not None and window[0] == number - 1 else 0
            window = self._windows[key] = [number, 0, previous, expiry]
        if now >= self._next_sweep:
            self._sweep(now)
        previous_count, current_count = window[2], window[1]
        # Seconds left in the current window = how much of the previous one still counts.
        left = (1 - ((now / expiry) % 1)) * expiry
        previous_weight = previous_count * left / expiry if previous_count else 0.0
        allowed = cost <= limit and math.floor(previous_weight + current_count) + cost <= limit
        if allowed:
            current_count = window[1] = current_count + cost
        remaining = max(0, limit - math.floor(previous_weight + current_count))
        if not (previous_count or current_count):
            return LimitState(allowed, limit, remaining, now)
        reset_in = math.inf
        if previous_count:
            reset_in = left % (expiry / previous_count)
        if current_count:
            reset_in = min(reset_in, (left + expiry) % expiry)
        return LimitState(allowed, limit, remaining, now + reset_in)

    def _sweep(self, now: float) -> None:
        """Forget keys whose windows are too old to count any more."""
        self._next_sweep = now + self.SWEEP_EVERY_S
        stale = [k for k, (number, _, _, expiry) in self._windows.items() if number < int(now / expiry) - 1]
        for key in stale:
            del self._windows[key]

    def reset(self) -> None:
        self._windows.clear()


class RateLimiter:
    def __init__(self, redis_url: str = "", namespace: str = "stemforge") -> None:
        uri = "async+" + redis_url if redis_url else "async+memory://"
        # redis-py (already a dependency) rather than limits' default async client, coredis, not installed.
        options = {"key_prefix": f"{namespace}-rl", "implementation": "redispy"} if redis_url else {}
        self.storage = storage_from_string(uri, **options)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.memory = None if redis_url else MemoryWindows()

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def parse(spec: str) -> RateLimitItem:
        return parse(spec)

    async def hit(self, item: RateLimitItem, scope: str, key: str) -> LimitState:
        if self.memory is not None:
            return self.memory.hit(item, item.key_for(scope, key))
        allowed = await self.strategy.hit(item, scope, key)
        stats = await self.strategy.get_window_stats(item, scope, key)
        return LimitState(allowed, item.amount, max(0, stats.remaining), stats.reset_time)

    async def reset(self) -> None:
        if self.memory is not None:
            self.memory.reset()
        await self.storage.reset()
