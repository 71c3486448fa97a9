"""An adaptive concurrency limit: additive increase on success, halve on throttling (429/503).

``acquire`` is awaited *before* a rollout's coroutine is created, so the limit bounds both requests
in flight and coroutines alive.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["AdaptiveLimit"]

DECREASE_EVERY_S = 1.0  # one halving per burst of 429s, not one per response in the burst


class AdaptiveLimit:
    def __init__(self, maximum: int, adaptive: bool = True):
        self.maximum = maximum
        self.limit = maximum
        self.adaptive = adaptive
        self.in_use = 0
        self.throttles = 0
        self.lowest = maximum
        self._credit = 0.0
        self._last_decrease = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.in_use >= self.limit:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()
                raise
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_use
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    def on_throttle(self) -> None:
        """The endpoint said "slow down": halve the limit (at most once per second)."""
        self.throttles += 1
        now = time.monotonic()
        if self.adaptive and now - self._last_decrease >= DECREASE_EVERY_S:
            self._last_decrease = now
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self._credit = 0.0

    def on_success(self) -> None:
        """A request went through: grow back by one slot per ``limit`` successes."""
        if self.limit < self.maximum:
            self._credit += 1.0 / self.limit
            if self._credit >= 1.0:
                self._credit = 0.0
                self.limit += 1
                self._wake()
