"""Filters that judge groups of rollouts: pass-rate band, zero variance, cap per task, strata, KTO balance.

Each is a ``GroupFilter`` registered under its chain name, with ``decide(cand, rows) -> Verdicts``: ``cand`` holds the
indices of the rows still alive when the filter's turn comes (sorted), ``rows`` the columns of every row. Everything
is numpy over those columns, so a group filter costs a few milliseconds per 100,000 rows, and what it returns holds
a reason per dropping task or stratum, not a dict entry per dropped row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rollgen import config as c
from rollgen.quality.registry import FILTERS, GroupFilter, Inputs, Verdicts
from rollgen.quality.view import Reason, Rows

__all__ = ["CapPerTask", "KtoBalance", "PassRate", "Stratify", "ZeroVariance", "task_stats"]


def task_stats(cand: np.ndarray, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per task among ``cand``: (group of each cand, task codes, rewarded count, mean, max - min of rewards)."""
    tasks, group = np.unique(rows.task[cand], return_inverse=True)
    r = rows.reward[cand]
    has = ~np.isnan(r)
    n = np.bincount(group, weights=has, minlength=len(tasks))
    total = np.bincount(group, weights=np.where(has, r, 0.0), minlength=len(tasks))
    mean = np.divide(total, n, out=np.full(len(tasks), np.nan), where=n > 0)
    hi = np.full(len(tasks), -np.inf)
    lo = np.full(len(tasks), np.inf)
    np.maximum.at(hi, group[has], r[has])
    np.minimum.at(lo, group[has], r[has])
    return group, tasks, n.astype(np.int64), mean, np.where(n > 0, hi - lo, 0.0)


@FILTERS.register("pass_rate")
class PassRate(GroupFilter):
    def __init__(self, p: c.PassRateFilter):
        super().__init__()
        self.p = p

    def decide(self, cand: np.ndarray, rows: Rows) -> Verdicts:
        group, tasks, n, mean, _ = task_stats(cand, rows)
        p, verdict = self.p, {}
        for g in range(len(tasks)):
            if n[g] < p.min_group_size:
                verdict[g] = "too few rewarded rollouts", f"task {rows.task_ids[tasks[g]]}: {n[g]} < {p.min_group_size}"
            elif mean[g] < p.min:
                verdict[g] = f"pass rate < {p.min:g}", f"task {rows.task_ids[tasks[g]]}: mean reward {mean[g]:.3g} over {n[g]}"
            elif mean[g] > p.max:
                verdict[g] = f"pass rate > {p.max:g}", f"task {rows.task_ids[tasks[g]]}: mean reward {mean[g]:.3g} over {n[g]}"
        return Verdicts.by_group(cand, group, verdict)


@FILTERS.register("zero_variance")
class ZeroVariance(GroupFilter):
    def __init__(self, p: c.ZeroVarianceFilter):
        super().__init__()
        self.p = p

    def decide(self, cand: np.ndarray, rows: Rows) -> Verdicts:
        group, tasks, n, mean, spread = task_stats(cand, rows)
        verdict: dict[int, Reason] = {}
        for g in range(len(tasks)):
            if n[g] < self.p.min_group_size:
                verdict[g] = "group too small", f"task {rows.task_ids[tasks[g]]}: {n[g]} rewarded rollouts"
            elif spread[g] == 0:
                verdict[g] = "zero variance", f"task {rows.task_ids[tasks[g]]}: all {n[g]} rewards = {mean[g]:g}"
        return Verdicts.by_group(cand, group, verdict)


def _best_first(cand: np.ndarray, rows: Rows) -> np.ndarray:
    """``cand`` ordered by task, then reward (highest first, none last), then file order."""
    r = rows.reward[cand]
    return cand[np.lexsort((cand, -np.nan_to_num(r, nan=-np.inf), rows.task[cand]))]


@FILTERS.register("cap_per_task")
class CapPerTask(GroupFilter):
    def __init__(self, p: c.CapPerTaskFilter):
        super().__init__()
        self.cap = p.max_per_task

    def decide(self, cand: np.ndarray, rows: Rows) -> Verdicts:
        ordered = _best_first(cand, rows)
        tasks = rows.task[ordered]
        starts = np.flatnonzero(np.r_[True, tasks[1:] != tasks[:-1]])
        sizes = np.diff(np.r_[starts, len(ordered)])
        rank = np.arange(len(ordered)) - np.repeat(starts, sizes)
        over = rank >= self.cap
        group = np.repeat(np.arange(len(starts)), sizes)[over]  # the task's run in ``ordered``
        verdict = {g: ("over cap per task", f"task {rows.task_ids[tasks[starts[g]]]}: {sizes[g]} rollouts, "
                       f"the best {self.cap} kept")
                   for g in np.unique(group).tolist()}
        return Verdicts.by_group(ordered[over], group, verdict)


def _priority(cand: np.ndarray, seed: int, size: int) -> np.ndarray:
    """A seeded random priority per row index, the same for a row whatever else is alive."""
    return np.random.default_rng(seed).random(size)[cand]


def _lookup(meta: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(meta, dict) or part not in meta:
            return None
        meta = meta[part]
    return meta


@FILTERS.register("stratify")
class Stratify(GroupFilter):
    """Quotas per stratum: the largest total whose shares fit the strata present, capped per stratum."""

    def __init__(self, p: c.StratifyFilter, task_meta: Mapping[str, dict[str, Any]]):
        super().__init__()
        self.p, self.task_meta = p, task_meta

    @classmethod
    def from_config(cls, params: c.StratifyFilter, cfg: c.QualityConfig, inputs: Inputs) -> Stratify:
        return cls(params, inputs.task_meta)

    def stratum(self, task_id: str) -> str:
        value = _lookup(self.task_meta.get(task_id, {}), self.p.by)
        return self.p.missing if value is None else str(value)

    def decide(self, cand: np.ndarray, rows: Rows) -> dict[int, Reason]:
        names = [self.stratum(t) for t in rows.task_ids]
        strata = np.array([names[t] for t in rows.task[cand].tolist()], dtype=object)
        present = sorted(set(strata.tolist()))
        targets = dict(self.p.targets) or dict.fromkeys(present, 1.0)
        total_share = sum(targets.values())
        share = {s: targets.get(s, 0.0) / total_share for s in present}
        count = {s: int(np.count_nonzero(strata == s)) for s in present}
        fits = [count[s] / share[s] for s in present if share[s] > 0]
        total = min(fits) if fits else 0
        dropped: list[np.ndarray] = []
        reasons: list[Reason] = []
        prio = _priority(cand, self.p.seed, len(rows))
        for s in present:
            quota = int(total * share[s] + 1e-9)
            if self.p.max_per_stratum is not None:
                quota = min(quota, self.p.max_per_stratum)
            members = np.flatnonzero(strata == s)
            surplus = members[np.argsort(prio[members], kind="stable")][quota:]
            if len(surplus):
                label = f"{self.p.by}={s} not in targets" if share[s] == 0 else f"{self.p.by}={s} over quota"
                dropped.append(cand[surplus])
                reasons.append((label, f"quota {quota} of {count[s]} ({share[s]:.0%} of {int(total)})"))
        if not dropped:
            return Verdicts.none()
        which = np.repeat(np.arange(len(dropped)), [len(d) for d in dropped])
        return Verdicts(np.concatenate(dropped).astype(np.int64), which, reasons)


@FILTERS.register("kto_balance")
class KtoBalance(GroupFilter):
    def __init__(self, p: c.KtoBalanceFilter):
        super().__init__()
        self.p = p

    def decide(self, cand: np.ndarray, rows: Rows) -> Verdicts:
        r = rows.reward[cand]
        good = np.flatnonzero(r >= self.p.threshold)
        bad = np.flatnonzero(r < self.p.threshold)  # NaN is neither: kept
        if len(good) == 0 or len(bad) == 0:
            return Verdicts.none()  # one class only: nothing to balance against
        if len(good) > self.p.ratio * len(bad):
            surplus, keep, label = good, int(self.p.ratio * len(bad) + 1e-9), "desirable surplus"
        else:
            surplus, keep, label = bad, int(np.ceil(len(good) / self.p.ratio - 1e-9)), "undesirable surplus"
        prio = _priority(cand, self.p.seed, len(rows))
        drop = surplus[np.argsort(prio[surplus], kind="stable")][max(keep, 1):]
        detail = f"{len(good)} desirable : {len(bad)} undesirable, target {self.p.ratio:g} : 1"
        return Verdicts(cand[drop].astype(np.int64), np.zeros(len(drop), np.int64), [(label, detail)])
