"""The one pass over a run's ``rollouts.jsonl`` after collection, for everything that needs per-rollout data.

``scan_rollouts`` streams the file once and keeps a few numbers per task and 8 bytes per verified rollout:
the report's counts, rewards and tokens (``RolloutStats``), the pass@k / maj@k groups, each task's reward
tallies (RL rows' pass rate and variance) and where the rollouts came from (models, collection hashes,
sampling: the dataset card). Every later stage reads these instead of the file.

Quality's follower (``rollgen.follow``) scans in another process and sends its scan over in two parts, so the run's
process never holds the per-rollout part: first the counts (``Scanner.result(partial=True)``: what the collection
stage decides on and the dataset card shows), then, once its curation is done, pass@k / maj@k already computed and,
for RL rows, the per-task tallies (``Scanner.rest``: a ``ScanRest``, which ``RolloutScan.complete`` takes in).
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
from rollgen.taskcodes import TaskCodes

__all__ = ["RolloutScan", "ScanRest", "Scanner", "scan_rollouts"]


@dataclass(frozen=True)
class ScanRest:
    """The part of a scan that a partial one leaves out, made small: pass@k / maj@k (``PassCurves.curves()``) and,
    when asked, the per-task tallies with their task table (RL rows' pass rates)."""

    pass_at_k: dict[str, dict[int, float]]
    index: TaskCodes | None = None
    tallies: tuple[array[float], ...] = ()


@dataclass
class RolloutScan:
    """What one pass over the rollouts found; ``task(task_id)`` gives a task's reward tallies.

    A ``partial`` scan (a follower's first answer) has the counts, models, hashes and sampling only: no pass@k codes
    (``curves`` is None) and no per-task tallies until ``complete`` gives it them."""

    stats: RolloutStats
    curves: PassCurves | None
    path: Path | None = None  # the file scanned
    models: list[str] = field(default_factory=list)
    config_hashes: list[str] = field(default_factory=list)
    sampling: dict[str, Any] | None = None
    pass_threshold: float = PASS_THRESHOLD  # what ``TaskStats.passed`` counts
    _index: TaskCodes = field(default_factory=TaskCodes, repr=False)
    _tallies: tuple[array[float], ...] = field(default=(), repr=False)  # per task: scored, sum, sum of squares, passed
    partial: bool = False  # no per-task tallies (and no pass@k codes): the counts only

    def task(self, task_id: str) -> TaskStats:
        """The rewards of ``task_id``'s scored rollouts (zeros for a task without any)."""
        if self.partial:
            raise RuntimeError("this scan has the counts only, not each task's tallies (RolloutScan.complete)")
        i = self._index.get(task_id) if isinstance(task_id, str) else -1
        if i < 0:
            return TaskStats(0, 0.0, 0.0, 0)
        n, total, total_sq, ok = (t[i] for t in self._tallies)
        return TaskStats(int(n), total, total_sq, int(ok))

    def complete(self, rest: ScanRest) -> None:
        """Take in the per-task tallies of ``rest`` (when it has them: then ``task`` answers)."""
        if rest.index is not None:
            self._index, self._tallies, self.partial = rest.index, rest.tallies, False


def scan_rollouts(path: str | os.PathLike[str], *, pass_threshold: float = PASS_THRESHOLD) -> RolloutScan:
    """Stream ``path`` once (a torn last line, left by a killed writer, is left out).

    ``pass_threshold`` is what each task's ``passed`` tally counts (RL's ``format.pass_threshold``); the
    report's pass rates always use the default threshold.
    """
    scan = _scan(read_jsonl(path, torn_tail=True), pass_threshold)
    scan.path = Path(path)
    return scan


def _scan(rows: Iterable[dict[str, Any]], pass_threshold: float) -> RolloutScan:
    scanner = Scanner(pass_threshold)
    for r in rows:
        scanner.add(r)
    return scanner.result()


class Scanner:
    """The scan one row at a time (``add``), for a caller that parses the rows anyway (quality's first pass
    following the file while it is written); ``result()`` is what ``scan_rollouts`` returns."""

    def __init__(self, pass_threshold: float = PASS_THRESHOLD) -> None:
        self.pass_threshold = pass_threshold
        self.statuses: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self.models: set[str] = set()
        self.hashes: set[str] = set()
        self.sampling: dict[str, Any] | None = None
        self.index = TaskCodes()  # task id -> its number here, without a Python object per task
        self.n_scored, self.solved = array("d"), array("b")  # per task; solved: one of its rollouts passed
        self.total, self.total_sq, self.tally = array("d"), array("d"), array("d")
        self.curves = PassCurves()
        self.rewarded = self.n_passed = 0
        self.reward_sum = 0.0

    def observe(self, views: Iterable[Any]) -> None:
        """A quality observer: every row of a batch of ``RowView``s, numbered by the chain's task codes (the
        table comes with ``result(codes=...)``), so the scan keeps no table of its own."""
        for v in views:
            self.add(v.row, v.task)

    def add(self, r: dict[str, Any], code: int | None = None) -> None:
        """One row; ``code``: its task's number in the caller's table (first seen first), else numbered here."""
        self.statuses[r.get("status", "?")] += 1
        task_id = r.get("task_id")
        i = self.index.code(task_id if isinstance(task_id, str) else str(task_id)) if code is None else code
        while i >= len(self.solved):  # a new task
            for a in (self.n_scored, self.total, self.total_sq, self.tally):
                a.append(0.0)
            self.solved.append(0)
        for k, v in (r.get("usage") or {}).items():
            if isinstance(v, int):
                self.tokens[k] += v
        if r.get("model"):
            self.models.add(r["model"])
        if r.get("config_hash"):
            self.hashes.add(r["config_hash"])
        self.sampling = self.sampling or r.get("sampling")
        reward = r.get("reward")
        if reward is None:
            return
        ok = passed(reward)
        self.rewarded += 1
        self.reward_sum += reward
        self.n_passed += ok
        self.solved[i] |= ok
        self.n_scored[i] += 1
        self.total[i] += reward
        self.total_sq[i] += reward * reward
        self.tally[i] += ok if self.pass_threshold == PASS_THRESHOLD else passed(reward, self.pass_threshold)
        self.curves.add(task_id, (r.get("reward_details") or {}).get("extracted"), ok, i)  # type: ignore[arg-type]

    def result(self, path: str | os.PathLike[str] | None = None, codes: TaskCodes | None = None, *,
               partial: bool = False) -> RolloutScan:
        """The scan; ``codes``: the table of the codes ``add`` was given (``observe``). ``partial``: without the
        per-rollout and per-task parts (no pass@k codes, no task table, no tallies), whatever the number of rollouts
        a few hundred bytes to send to another process; ``rest`` gives the remainder."""
        index, rewarded = self.index if codes is None else codes, self.rewarded
        stats = RolloutStats(
            tasks=len(index), rollouts=sum(self.statuses.values()), by_status=dict(sorted(self.statuses.items())),
            mean_reward=round(self.reward_sum / rewarded, 6) if rewarded else None,
            pass_rate=round(self.n_passed / rewarded, 6) if rewarded else None,
            task_pass_rate=round(sum(self.solved) / len(index), 6) if index else None, tokens=dict(self.tokens))
        return RolloutScan(stats=stats, curves=None if partial else self.curves,
                           path=Path(path) if path is not None else None, models=sorted(self.models),
                           config_hashes=sorted(self.hashes), sampling=self.sampling,
                           pass_threshold=self.pass_threshold, _index=TaskCodes() if partial else index,
                           _tallies=() if partial else self._tallies(), partial=partial)

    def rest(self, codes: TaskCodes | None = None) -> ScanRest:
        """What ``result(partial=True)`` left out: pass@k / maj@k computed here, and the per-task tallies with their
        table when ``codes`` (the table of the codes ``add`` was given, as for ``result``) is given."""
        return ScanRest(self.curves.curves(), codes, self._tallies() if codes is not None else ())

    def _tallies(self) -> tuple[array[float], ...]:
        return self.n_scored, self.total, self.total_sq, self.tally
