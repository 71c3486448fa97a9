"""rollgen's log records leave the event loop: while a run is in progress, the ``rollgen`` logger hands each
record to a queue and a thread passes it on to the handlers it would have reached (Hydra's ``rollgen.log``
file handler, the console, a test's capture), so a file write never happens on the loop.

This is the logging cookbook's "dealing with handlers that block" (``QueueHandler`` + ``QueueListener``),
applied to rollgen's logger only and only for the run: the handlers, their levels, formatters and filters
(``rollgen.redact``'s) stay what the application configured; records keep their order.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from logging.handlers import QueueHandler, QueueListener

__all__ = ["logging_off_the_loop"]

_lock = threading.Lock()
_active = 0  # runs in progress in this process (they share the one queue)
_listener: QueueListener | None = None
_saved: tuple[list[logging.Handler], bool] | None = None


class _Dispatch(logging.Handler):
    """In the listener's thread: what ``Logger.callHandlers`` would have done with the logger's own handlers."""

    def __init__(self, logger: logging.Logger, handlers: list[logging.Handler], propagate: bool):
        super().__init__()
        self.logger, self.handlers, self.propagate = logger, handlers, propagate

    def handle(self, record: logging.LogRecord) -> bool:
        chain = list(self.handlers)
        parent = self.logger.parent if self.propagate else None
        while parent is not None:
            chain += parent.handlers
            parent = parent.parent if parent.propagate else None
        if not chain and logging.lastResort is not None:
            chain = [logging.lastResort]
        for handler in chain:
            if record.levelno >= handler.level:
                handler.handle(record)
        return True


@asynccontextmanager
async def logging_off_the_loop(name: str = "rollgen") -> AsyncIterator[None]:
    """For the block: records of logger ``name`` are handled in a thread, not where they are logged."""
    global _active, _listener, _saved
    logger = logging.getLogger(name)
    with _lock:
        _active += 1
        if _active == 1:
            q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
            _saved = (logger.handlers[:], logger.propagate)
            _listener = QueueListener(q, _Dispatch(logger, *_saved))
            logger.handlers, logger.propagate = [QueueHandler(q)], False
            _listener.start()
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            last, listener = _active == 0, _listener
            if last and _saved is not None:
                logger.handlers, logger.propagate = _saved
                _listener = _saved = None
        if last and listener is not None:
            await asyncio.to_thread(listener.stop)  # every record queued so far is handled first
