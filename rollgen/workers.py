"""Worker processes that never run the user's main script.

``WorkerPool`` is the process pool a ``Runtime`` hands to components for CPU-heavy calls (math-verify):
started on first use and warmed up, at most ``workers`` calls inside at once, a hung or broken pool killed
and replaced by a fresh one on the next call.

``spawn`` and ``forkserver`` children normally re-import the parent's ``__main__`` (as ``__mp_main__``) so that
functions defined there unpickle. A trainer script without an ``if __name__ == "__main__":`` guard then runs
again in every rollgen worker: it loads its model again, calls the reward again, and that nested call fails
("An attempt has been made to start a new process before the current process has finished its
bootstrapping phase"), so rewards come back as None. rollgen's workers run only rollgen's own functions,
so ``process_context()`` starts them without the main module: everything else (``sys.path``, the working
directory, the start method's safety with threads) is as in the standard context.

It wraps ``multiprocessing.spawn.get_preparation_data`` (the one place the standard library decides what a
child re-imports) and drops the main-module entries only while one of these processes is being started,
on that thread; every other process is started exactly as before.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import context, spawn
from typing import Any

__all__ = ["WorkerDied", "WorkerHung", "WorkerPool", "process_context", "stop_pool"]

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_starting = threading.local()
_standard_preparation_data = spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    data = _standard_preparation_data(name)
    if getattr(_starting, "without_main", False):
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data


def _install() -> None:
    if spawn.get_preparation_data is not _preparation_data:
        spawn.get_preparation_data = _preparation_data


def _launch_without_main(base: type[Any], process_obj: Any) -> Any:
    """Start ``process_obj`` with ``base``'s launcher, its preparation data without the main module."""
    _starting.without_main = True
    try:
        return base._Popen(process_obj)  # noqa: SLF001 - the start method's own launcher
    finally:
        _starting.without_main = False


# Module-level classes: the process object is pickled to the child, so its class must be importable.
class NoMainSpawnProcess(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # noqa: N802 - the name multiprocessing calls
        return _launch_without_main(context.SpawnProcess, process_obj)


class NoMainSpawnContext(context.SpawnContext):
    Process = NoMainSpawnProcess


_CONTEXTS: dict[str, type[context.BaseContext]] = {"spawn": NoMainSpawnContext}

if hasattr(context, "ForkServerContext"):  # POSIX

    class NoMainForkServerProcess(context.ForkServerProcess):
        @staticmethod
        def _Popen(process_obj: Any) -> Any:  # noqa: N802
            return _launch_without_main(context.ForkServerProcess, process_obj)

    class NoMainForkServerContext(context.ForkServerContext):
        Process = NoMainForkServerProcess

    _CONTEXTS["forkserver"] = NoMainForkServerContext


def process_context(method: str | None = None) -> context.BaseContext:
    """A ``multiprocessing`` context (for ``ProcessPoolExecutor(mp_context=...)``) whose children do not
    re-import ``__main__``. ``method``: forkserver where available, else spawn (never fork: the parent has
    threads)."""
    if method is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        return multiprocessing.get_context("fork")  # a forked child has the parent's modules: nothing re-imported
    _install()
    return _CONTEXTS[method]()


WARMUP_TIMEOUT_S = 120.0  # worker start-up (imports, warm-up), not counted against a call's deadline


class WorkerHung(TimeoutError):
    """A call ran past its deadline without returning: the pool was killed (the next call starts a fresh one)."""


class WorkerDied(RuntimeError):
    """A worker process died during a call: the pool was killed (the next call starts a fresh one)."""


class WorkerPool:
    """Worker processes for CPU-heavy calls, off the event loop. Use it from one event loop."""

    def __init__(self, name: str, workers: int, *, initializer: Callable[[], None] | None = None,
                 warm_up: Callable[[], None] | None = None, start_method: str | None = None):
        self.name, self.workers = name, workers
        self._initializer, self._warm_up, self._start_method = initializer, warm_up, start_method
        self._executor: ProcessPoolExecutor | None = None
        self._warm: list[Future[Any]] = []
        self._slots = asyncio.Semaphore(workers)  # binds to the loop of its first waiter

    @property
    def started(self) -> bool:
        return self._executor is not None

    def pids(self) -> list[int]:
        """The worker processes' ids (none before the first call)."""
        executor = self._executor
        return [p.pid for p in (executor._processes or {}).values()] if executor is not None else []

    def _ensure(self) -> tuple[ProcessPoolExecutor, list[Future[Any]]]:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(  # workers that do not re-run the caller's main script
                max_workers=self.workers, mp_context=process_context(self._start_method), initializer=self._initializer)
            self._warm = [self._executor.submit(self._warm_up) for _ in range(self.workers)] if self._warm_up else []
        return self._executor, self._warm

    async def call(self, fn: Callable[..., Any], *args: Any, deadline_s: float | None = None) -> Any:
        """``fn(*args)`` in a worker. Raises what ``fn`` raised; ``WorkerHung`` when no answer came within
        ``deadline_s`` (counted from when a worker takes the call, not while it waits for one);
        ``WorkerDied`` when a worker died."""
        # Starting workers and handing over a call write to pipes and take the executor's locks: in a thread.
        executor, warm = self._ensure() if self._executor is not None else await asyncio.to_thread(self._ensure)
        try:
            for f in warm:
                if not f.done():
                    await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(f)), WARMUP_TIMEOUT_S)
            async with self._slots:  # at most `workers` calls inside: a deadline measures work, not queueing
                call = asyncio.wrap_future(await asyncio.to_thread(executor.submit, fn, *args))
                try:
                    done, _ = await asyncio.wait({call}, timeout=deadline_s)
                except asyncio.CancelledError:
                    call.cancel()
                    raise
                if not done:
                    call.cancel()
                    await self._discard(executor)
                    raise WorkerHung(f"{self.name} worker hung past {deadline_s:g}s; restarted the pool")
                return call.result()
        except BrokenProcessPool as e:
            await self._discard(executor)
            raise WorkerDied(f"{self.name} worker died ({e or 'killed'}); restarted the pool") from None

    async def _discard(self, executor: ProcessPoolExecutor) -> None:
        """Kill a hung or broken pool; the next call starts a fresh one."""
        if self._executor is executor:
            self._executor, self._warm = None, []
        await asyncio.to_thread(stop_pool, executor, kill=True)

    async def close(self) -> None:
        """Shut the workers down (waiting a moment for them, then killing any left)."""
        executor, self._executor, self._warm = self._executor, None, []
        if executor is None:
            return
        try:
            await asyncio.to_thread(stop_pool, executor, kill=False)
        except RuntimeError:  # at interpreter exit no thread starts (the pool's own exit hook ran): kill
            stop_pool(executor, kill=True)


def stop_pool(pool: ProcessPoolExecutor, *, kill: bool, join_s: float = 5.0) -> None:
    """Shut a pool down and reap its processes (killing any still alive after ``join_s``, or at once)."""
    processes = list((pool._processes or {}).values())  # the executor has no public handle
    if kill:
        for p in processes:
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.join(join_s)
        if p.is_alive():
            p.kill()
            p.join()
