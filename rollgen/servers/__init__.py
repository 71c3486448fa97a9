"""Resource servers: a task domain's dataset and tools. ``server=<name>`` picks one by ``_target_``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel

from rollgen.errors import UserError
from rollgen.records import Task

__all__ = ["ResourceServer", "TaskSourceError"]


class TaskSourceError(UserError, ValueError):
    """The tasks cannot be produced as configured (a bad task file line, an unknown generator, fewer
    distinct tasks than asked for); the message says what to change. The run stops before any request."""


class ResourceServer(ABC):
    """Yields tasks and executes the tools a policy may call while solving them."""

    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: BaseModel):
        self.params = params

    @abstractmethod
    def tasks(self, skipped: list[str] | None = None) -> Iterator[Task]:
        """Stream the tasks, in a deterministic order. A bad row raises ``TaskSourceError``, or, when the run
        skips bad rows (``on_bad_row=skip``: ``skipped`` is a list), is left out and noted in ``skipped``
        (``"file:line: reason"``)."""

    def for_repeat(self, task: Task, repeat: int) -> Task:
        """The task as its ``repeat``-th attempt is given it: the task itself, unless the server varies a task
        from one repeat to the next (``server=mcqa`` with ``shuffle_choices`` shows each its own option order).
        The rollout unit asks for it before the policy's first turn, in the rollout's own asyncio task, and
        verifies against what it returns; a server that keeps per-rollout state (``server=remote``'s session)
        starts it here."""
        return task

    def tools(self) -> list[dict[str, Any]]:
        """OpenAI function-tool specs offered to the policy (none by default)."""
        return []

    async def call_tool(self, name: str, arguments: dict[str, Any], task: Task) -> str:
        """Execute one tool call and return its result as text."""
        raise KeyError(f"server {type(self).__name__} has no tool '{name}'")

    def added_text(self) -> list[str]:
        """Text this server adds to task prompts (a template's fixed part, an answer instruction), so
        ``rollgen tasks preview`` and ``rollgen validate`` can tell an instruction given twice."""
        return []

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this server's tasks, for the rollout cache key."""
        return {"target": f"{type(self).__module__}.{type(self).__qualname__}", **self.params.model_dump(mode="json")}
