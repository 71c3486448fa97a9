"""Stopping a run from outside it: what the CLI's signal handlers call (library code installs no handlers).

While rollouts are collected, ``request()`` cancels the collection cleanly (in-flight requests are
dropped, every written rollout kept, the report says ``interrupted``). Outside collection it returns
False and the caller interrupts the current stage itself (the CLI raises ``KeyboardInterrupt``, which the
engine turns into an ``interrupted`` report). ``flush()`` is for a hard exit on a second signal: it
writes what the run has buffered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Stop"]


class Stop:
    def __init__(self) -> None:
        self.reason: str | None = None  # set by the first request
        self._task: asyncio.Task[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushers: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def attach(self, task: asyncio.Task[object]) -> None:
        """The engine's collection task: a request cancels it."""
        self._task, self._loop = task, task.get_loop()

    def detach(self) -> None:
        self._task = self._loop = None

    def on_flush(self, fn: Callable[[], None]) -> None:
        self._flushers.append(fn)

    def request(self, reason: str) -> bool:
        """Ask the run to stop; True when a running collection is being cancelled, False otherwise."""
        if self.reason is None:
            self.reason = reason
        task, loop = self._task, self._loop
        if task is None or loop is None or task.done() or loop.is_closed():
            return False
        loop.call_soon_threadsafe(task.cancel)
        return True

    def flush(self) -> None:
        """Run the flush callbacks (for a hard exit); errors are ignored, the process is leaving."""
        for fn in self._flushers:
            try:
                fn()
            except Exception:  # noqa: BLE001, S110 - best effort on the way out
                pass
