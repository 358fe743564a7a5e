"""Per-user rate limits on top of the ``limits`` library.

Memory storage by default (one web process); Redis when configured, so that
several web processes share one budget per user.
"""

from __future__ import annotations

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


class RateLimiter:
    def __init__(self, redis_url: str = "", namespace: str = "stemforge") -> None:
        uri = "async+" + redis_url if redis_url else "async+memory://"
        # redis-py (already a dependency) rather than limits' default async client, coredis, not installed.
        options = {"key_prefix": f"{namespace}-rl", "implementation": "redispy"} if redis_url else {}
        self.storage = storage_from_string(uri, **options)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)

    @staticmethod
    def parse(spec: str) -> RateLimitItem:
        return parse(spec)

    async def hit(self, item: RateLimitItem, scope: str, key: str) -> LimitState:
        allowed = await self.strategy.hit(item, scope, key)
        stats = await self.strategy.get_window_stats(item, scope, key)
        return LimitState(allowed, item.amount, max(0, stats.remaining), stats.reset_time)

    async def reset(self) -> None:
        await self.storage.reset()
