"""Verifiers: turn a rollout into a reward in [0, 1] with per-criterion details."""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel

from rollgen.records import Rollout, Task, Verdict

__all__ = ["Verifier", "verify"]


class Verifier(ABC):
    """One method, ``verify``: async, or sync (then rollgen runs it in a thread, off the event loop)."""

    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: BaseModel):
        self.params = params

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        """Score ``rollout.completion`` against ``task``."""

    async def close(self) -> None:
        """Release workers; called once at the end of a run."""


async def verify(verifier: Verifier, task: Task, rollout: Rollout) -> Verdict:
    """Call ``verifier.verify`` whether it is async or sync, never blocking the loop with sync work."""
    if inspect.iscoroutinefunction(verifier.verify):
        return await verifier.verify(task, rollout)
    return await asyncio.to_thread(verifier.verify, task, rollout)
