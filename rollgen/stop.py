"""Stopping a run from outside it: what the CLI's signal handlers call (library code installs no handlers).

While rollouts are collected, ``request()`` cancels the collection cleanly (in-flight requests are
dropped, every written rollout kept, the report says ``interrupted``). While a blocking stage runs in a
worker thread (staging the tasks, quality, format, export: ``Stop.interruptible``), it raises
``KeyboardInterrupt`` in that thread, as Ctrl-C would in the main thread, and the engine turns it into an
``interrupted`` report (or, before the run started, into ``Interrupted``). Otherwise it returns False and
the caller interrupts the current stage itself. ``flush()`` is for a hard exit on a second signal: it writes
what the run has buffered.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from rollgen.errors import RollgenError

__all__ = ["Interrupted", "Stop"]

T = TypeVar("T")


class Interrupted(RollgenError):
    """The run was stopped before it started (nothing was written to its run dir)."""


def _raise_in_thread(thread_id: int, exc: type[BaseException]) -> None:
    """Raise ``exc`` in thread ``thread_id`` at its next check for pending work (a call, a loop's jump back).

    Never called to cancel one (``exc=NULL``): CPython 3.11 then leaves the interpreter's "async exception
    pending" flag set, and every thread takes the slow path of its eval loop from then on.
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc))


def _absorb() -> None:
    """Nothing: calling it delivers an exception pending for this thread, where the caller catches it."""


class Stop:
    def __init__(self) -> None:
        self.reason: str | None = None  # set by the first request
        self._task: asyncio.Task[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._injected = False  # a KeyboardInterrupt was raised in the thread of ``interruptible``
        self._lock = threading.Lock()
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

    def interruptible(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in this (worker) thread, which a request interrupts with ``KeyboardInterrupt``."""
        with self._lock:
            self._thread, self._injected = threading.get_ident(), False
        try:
            return fn(*args)
        finally:
            while True:  # an interrupt delivered on the way into ``_leave`` is caught here, and it runs again
                try:
                    self._leave()
                    break
                except KeyboardInterrupt:
                    continue

    def _leave(self) -> None:
        """No more interrupts for this thread; one that came as ``fn`` returned is delivered (and dropped) here."""
        with self._lock:
            self._thread = None
            injected, self._injected = self._injected, False
        if injected:
            _absorb()

    def request(self, reason: str) -> bool:
        """Ask the run to stop; True when a running collection or stage is being interrupted, False otherwise."""
        if self.reason is None:
            self.reason = reason
        with self._lock:
            if self._thread is not None:
                self._injected = True
                _raise_in_thread(self._thread, KeyboardInterrupt)
                return True
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
