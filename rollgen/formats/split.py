"""Leak-free splits: whole tasks go to train, validation or test, deterministically under a seed.

Tasks are ordered by a seeded hash of their id; the first ``round(n * validation_fraction)`` go to
validation, the next ``round(n * test_fraction)`` to test, the rest to train. A non-zero fraction gets at
least one task and train always keeps one (when there are at least two tasks), so small datasets still
have every split they asked for. The same tasks and seed always give the same split; every row of a task
lands in its task's split, so no prompt is trained on and evaluated on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

__all__ = ["SPLITS", "assign_splits", "task_hash"]

SPLITS = ("train", "validation", "test")


def task_hash(task_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:8], "big")


def _share(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return max(1, math.floor(n * fraction + 0.5))


def assign_splits(task_ids: Iterable[str], validation_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, str]:
    """``{task_id: split}`` for every task id (duplicates are one task)."""
    ordered = sorted(set(task_ids), key=lambda t: (task_hash(t, seed), t))
    n = len(ordered)
    n_val, n_test = _share(n, validation_fraction), _share(n, test_fraction)
    while n >= 2 and n_val + n_test > n - 1:  # train keeps a task: take it from the larger eval split
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    split = {}
    for i, t in enumerate(ordered):
        split[t] = "validation" if i < n_val else "test" if i < n_val + n_test else "train"
    return split
