"""The one pass over a run's ``rollouts.jsonl`` after collection, for everything that needs per-rollout data.

``scan_rollouts`` streams the file once and keeps a few numbers per task and 8 bytes per verified rollout:
the report's counts, rewards and tokens (``RolloutStats``), the pass@k / maj@k groups, each task's reward
tallies (RL rows' pass rate and variance) and where the rollouts came from (models, collection hashes,
sampling: the dataset card). Every later stage reads these instead of the file.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollgen.jsonl import read_jsonl
from rollgen.metrics import PASS_THRESHOLD, PassCurves, passed
from rollgen.results import RolloutStats, TaskStats

__all__ = ["RolloutScan", "scan_rollouts"]


@dataclass
class RolloutScan:
    """What one pass over the rollouts found; ``task(task_id)`` gives a task's reward tallies."""

    stats: RolloutStats
    curves: PassCurves
    path: Path | None = None  # the file scanned
    models: list[str] = field(default_factory=list)
    config_hashes: list[str] = field(default_factory=list)
    sampling: dict[str, Any] | None = None
    pass_threshold: float = PASS_THRESHOLD  # what ``TaskStats.passed`` counts
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _tallies: tuple[array[float], ...] = field(default=(), repr=False)  # per task: scored, sum, sum of squares, passed

    def task(self, task_id: str) -> TaskStats:
        """The rewards of ``task_id``'s scored rollouts (zeros for a task without any)."""
        i = self._index.get(task_id)
        if i is None:
            return TaskStats(0, 0.0, 0.0, 0)
        n, total, total_sq, ok = (t[i] for t in self._tallies)
        return TaskStats(int(n), total, total_sq, int(ok))


def scan_rollouts(path: str | os.PathLike[str], *, pass_threshold: float = PASS_THRESHOLD) -> RolloutScan:
    """Stream ``path`` once (a torn last line, left by a killed writer, is left out).

    ``pass_threshold`` is what each task's ``passed`` tally counts (RL's ``format.pass_threshold``); the
    report's pass rates always use the default threshold.
    """
    scan = _scan(read_jsonl(path, torn_tail=True), pass_threshold)
    scan.path = Path(path)
    return scan


def _scan(rows: Iterable[dict[str, Any]], pass_threshold: float) -> RolloutScan:
    statuses: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    models: set[str] = set()
    hashes: set[str] = set()
    sampling: dict[str, Any] | None = None
    index: dict[str, int] = {}
    n_scored, solved = array("d"), array("b")  # per task; solved: one of its rollouts passed
    total, total_sq, tally = array("d"), array("d"), array("d")
    curves = PassCurves()
    rewarded = n_passed = 0
    reward_sum = 0.0
    for r in rows:
        statuses[r.get("status", "?")] += 1
        task_id = r.get("task_id")
        i = index.get(task_id)
        if i is None:
            i = index[task_id] = len(index)
            for a in (n_scored, total, total_sq, tally):
                a.append(0.0)
            solved.append(0)
        for k, v in (r.get("usage") or {}).items():
            if isinstance(v, int):
                tokens[k] += v
        if r.get("model"):
            models.add(r["model"])
        if r.get("config_hash"):
            hashes.add(r["config_hash"])
        sampling = sampling or r.get("sampling")
        reward = r.get("reward")
        if reward is None:
            continue
        ok = passed(reward)
        rewarded += 1
        reward_sum += reward
        n_passed += ok
        solved[i] |= ok
        n_scored[i] += 1
        total[i] += reward
        total_sq[i] += reward * reward
        tally[i] += ok if pass_threshold == PASS_THRESHOLD else passed(reward, pass_threshold)
        curves.add(task_id, (r.get("reward_details") or {}).get("extracted"), ok, i)
    stats = RolloutStats(
        tasks=len(index), rollouts=sum(statuses.values()), by_status=dict(sorted(statuses.items())),
        mean_reward=round(reward_sum / rewarded, 6) if rewarded else None,
        pass_rate=round(n_passed / rewarded, 6) if rewarded else None,
        task_pass_rate=round(sum(solved) / len(index), 6) if index else None, tokens=dict(tokens))
    return RolloutScan(stats=stats, curves=curves, models=sorted(models), config_hashes=sorted(hashes),
                       sampling=sampling, pass_threshold=pass_threshold, _index=index,
                       _tallies=(n_scored, total, total_sq, tally))
