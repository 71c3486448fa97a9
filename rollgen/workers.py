"""Worker processes that never run the user's main script.

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

import multiprocessing
import threading
from multiprocessing import context, spawn
from typing import Any

__all__ = ["process_context"]

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
