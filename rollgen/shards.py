"""Shards: a run split over machines by a stable hash of the task id.

``shard.index=I shard.count=N`` makes a run collect only the tasks whose id hashes to ``I``: the first 8 bytes
of BLAKE2b over the id's UTF-8 bytes, big-endian, modulo ``N``. The hash depends on nothing but the id (not on
Python's per-process ``hash()`` seed, the machine or the order of the task source), so ``N`` runs, one per
index, on any machines, cover every task exactly once. ``limit`` applies before the split: the shards of a
``limit=1000`` run share out the same first 1,000 tasks. ``rollgen merge`` joins the shards' run dirs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from rollgen.records import Task

__all__ = ["in_shard", "shard_of"]


def shard_of(task_id: str, count: int) -> int:
    """The shard (0 .. count-1) that task ``task_id`` belongs to, the same on every machine and Python."""
    if count == 1:
        return 0
    digest = hashlib.blake2b(task_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def in_shard(tasks: Iterable[Task], index: int, count: int) -> Iterator[Task]:
    """The tasks of shard ``index`` of ``count`` (all of them when ``count`` is 1)."""
    if count == 1:
        yield from tasks
        return
    for task in tasks:
        if shard_of(task.id, count) == index:
            yield task
