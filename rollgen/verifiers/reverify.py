"""Re-verify a finished run's rollouts with another verifier config: no model calls.

Shared by ``rollgen verify`` (new rewards + a diff) and ``rollgen validate RUN_DIR`` (agreement between
two verifiers). Rollouts are rescored in file order, ``concurrency`` at a time, guards first as in a run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from rollgen.composer import GROUPS, rerun_config
from rollgen.errors import ConfigError
from rollgen.records import Rollout, Task
from rollgen.jsonl import read_jsonl
from rollgen.rundir import RunDir
from rollgen.unit import score

__all__ = ["GROUPS", "load_tasks", "rerun_config", "rescore", "scorable"]  # rerun_config: from rollgen.composer

_SCORED_STATUSES = ("ok", "truncated", "verifier_error")


def load_tasks(run_dir: str | Path) -> dict[str, Task]:
    path = RunDir(run_dir).tasks
    if not path.is_file():
        raise ConfigError([f"{run_dir}: no tasks.jsonl; rewards cannot be recomputed without the tasks"])
    return {row["id"]: Task.model_validate(row) for row in read_jsonl(path)}


def scorable(row: dict[str, Any]) -> bool:
    """Whether a run verified (or tried to verify) this rollout: it has a completion to score."""
    return row.get("status") in _SCORED_STATUSES or row.get("reward") is not None


async def _rescore_one(row: dict[str, Any], tasks: dict[str, Task], verifier: Any, server: Any) -> Rollout:
    old = Rollout.model_validate(row)
    if not scorable(row):
        return old
    task = tasks.get(old.task_id)
    if task is None:
        raise ConfigError([f"rollout {old.id}: task {old.task_id!r} is not in the run's tasks.jsonl"])
    if server is not None:  # the task as this repeat was shown it (and verified against) in the run
        task = server.for_repeat(task, old.repeat)
    status = old.status
    if status == "verifier_error":  # what it was before the verifier failed
        status = "truncated" if old.finish_reason == "length" else "ok"
    new = old.model_copy(update={"status": status, "error": None if old.status == "verifier_error" else old.error})
    return await score(verifier, task, new)  # the collection's verify step: a crash is verifier_error, a bug raises


async def _rows(rows: Iterable[dict[str, Any]] | AsyncIterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row


async def rescore(rows: Iterable[dict[str, Any]] | AsyncIterable[dict[str, Any]], tasks: dict[str, Task],
                  verifier: Any, concurrency: int = 64, server: Any = None,
                  ) -> AsyncIterator[tuple[dict[str, Any], Rollout]]:
    """``(old row, rescored Rollout)`` in file order, with at most ``concurrency`` verifications in flight.

    ``server``: the run's resource server, whose ``for_repeat`` gives each repeat the task it was shown (a
    server that varies tasks per repeat, such as ``server=mcqa`` with ``shuffle_choices``, needs it).

    ``rows``: rows in memory, or read from a file without blocking the loop (``jsonl.aread_jsonl``).
    """
    pending: deque[tuple[dict[str, Any], asyncio.Task[Rollout]]] = deque()
    try:
        async for row in _rows(rows):
            pending.append((row, asyncio.create_task(_rescore_one(row, tasks, verifier, server))))
            if len(pending) >= concurrency:
                old, task = pending.popleft()
                yield old, await task
        while pending:
            old, task = pending.popleft()
            yield old, await task
    finally:
        for _, task in pending:
            task.cancel()
