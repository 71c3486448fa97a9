"""Quality metrics over all rollouts and over the curated ones, gathered in the filters' first pass.

Reward histogram, pass rate per task (tasks never, always or sometimes solved: ``rollgen.metrics.passed``)
and mean reward per metadata value (difficulty, domain, source), completion
length, exact-duplicate rate and lexical diversity (distinct-1/2: distinct word n-grams / all). Memory
stays bounded: a few numbers per row, and distinct n-grams are counted by hash sampling (keep the hashes
whose top ``level`` bits are zero, raise the level when more than ``CAP`` are kept, scale back by
``2**level``), which is exact for small runs and within about 1% for large ones.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Mapping
from typing import Any

import numpy as np

from rollgen.metrics import pass_floor
from rollgen.quality.view import Rows, RowView
from rollgen.results import LengthHistogram

__all__ = ["BREAKDOWN", "Metrics"]

BREAKDOWN = ("difficulty", "domain", "source", "source_dataset")  # task metadata keys broken down by
BINS = np.linspace(0.0, 1.0, 11)
CAP = 1 << 20


class _Distinct:
    """Distinct hashed n-grams per row subset, by adaptive hash sampling."""

    def __init__(self) -> None:
        self.level = 0
        self.below = np.uint64(0)
        self.hashes, self.rows = np.zeros(0, np.uint64), np.zeros(0, np.int32)
        self.pending: list[np.ndarray] = []
        self.pending_rows: list[np.ndarray] = []
        self.kept = 0
        self.totals = array("i")

    def add(self, first: int, size: int, grams: np.ndarray, rows: np.ndarray) -> None:
        """The n-gram hashes of rows ``first .. first + size - 1``, ``rows`` counting from 0."""
        self.totals.extend(np.bincount(rows, minlength=size).astype(np.int32).tolist())
        if self.level:
            keep = grams < self.below
            grams, rows = grams[keep], rows[keep]
        if len(grams):
            self.pending.append(grams)
            self.pending_rows.append((rows + first).astype(np.int32))
            self.kept += len(grams)
            if self.kept > CAP:
                self.level += 1
                self.below = np.uint64(1 << (64 - self.level))
                h, r = self._all()
                keep = h < self.below
                self.hashes, self.rows, self.kept = h[keep], r[keep], int(keep.sum())

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every kept hash and its row (pending ones folded in)."""
        if self.pending:
            self.hashes = np.concatenate([self.hashes, *self.pending])
            self.rows = np.concatenate([self.rows, *self.pending_rows])
            self.pending, self.pending_rows = [], []
        return self.hashes, self.rows

    def ratio(self, mask: np.ndarray) -> float | None:
        totals = np.frombuffer(self.totals, dtype=np.int32)
        total = int(totals[mask].sum())
        if total == 0:
            return None
        h, r = self._all()
        return round(min(1.0, count_distinct(h[mask[r]]) * 2.0 ** self.level / total), 4)


def _summary(x: np.ndarray) -> dict[str, Any]:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return {"n": 0}
    return {"n": len(x), "mean": round(float(x.mean()), 4), "std": round(float(x.std()), 4),
            "min": round(float(x.min()), 4), "p50": round(float(np.median(x)), 4),
            "p90": round(float(np.quantile(x, 0.9)), 4), "max": round(float(x.max()), 4)}


class Metrics:
    """``observe`` every row in pass 1; ``finish`` with the decisions; then ``length_histogram`` for the plot."""

    def __init__(self, task_meta: Mapping[str, dict[str, Any]]):
        self.task_meta = task_meta
        self.chars, self.tokens = array("i"), array("i")
        self.keys = array("Q")
        self.distinct = {1: _Distinct(), 2: _Distinct()}

    def observe(self, views: list[RowView]) -> None:
        """A batch of rows (consecutive indices)."""
        for v in views:
            self.chars.append(len(v.completion))
            self.tokens.append(-1 if (t := v.completion_tokens) is None else t)
            self.keys.append(v.pair_key)
        if views:
            batch, first = views[0].batch, views[0].index
            for n, d in self.distinct.items():
                h, r = batch.ngrams(n)
                d.add(first, batch.size, h, r)

    def finish(self, rows: Rows, kept: np.ndarray) -> dict[str, Any]:
        """``kept``: a boolean per row. Returns the summary (report.json's ``quality``)."""
        self.kept, self.rows = kept, rows
        reward = rows.reward
        tokens = np.frombuffer(self.tokens, dtype=np.int32)
        self.length_unit = "tokens" if len(tokens) and (tokens >= 0).mean() >= 0.5 else "chars"
        self.length = (np.where(tokens >= 0, tokens, np.nan) if self.length_unit == "tokens"
                       else np.frombuffer(self.chars, dtype=np.int32).astype(np.float64))
        self.task_mean = self._task_means(rows, np.ones(len(rows), dtype=bool))
        keys = np.frombuffer(self.keys, dtype=np.uint64)
        out: dict[str, Any] = {
            "rollouts": len(rows), "curated": int(kept.sum()),
            "reward": {"all": _summary(reward), "curated": _summary(reward[kept]),
                       "bins": BINS.round(2).tolist(),
                       "histogram": {"all": np.histogram(reward[~np.isnan(reward)], BINS)[0].tolist(),
                                     "curated": np.histogram(reward[kept & ~np.isnan(reward)], BINS)[0].tolist()}},
            "length": {"unit": self.length_unit, "all": _summary(self.length), "curated": _summary(self.length[kept])},
            "pass_rate": self._pass_rate(rows),
            "by_metadata": self._by_metadata(rows, kept),
            "duplicates": {"exact_rate": {"all": _dup_rate(keys), "curated": _dup_rate(keys[kept])}},
            "distinct": {f"distinct_{n}": {"all": d.ratio(np.ones(len(rows), dtype=bool)), "curated": d.ratio(kept)}
                         for n, d in self.distinct.items()},
        }
        self.summary = out
        return out

    def length_histogram(self, bins: int = 40) -> LengthHistogram:
        """Completion lengths (after ``finish``) in ``bins`` bins over all rollouts, for the length plot."""
        length = self.length[~np.isnan(self.length)]
        if not len(length):
            return LengthHistogram(self.length_unit, [], [], [])
        edges = np.histogram_bin_edges(length, bins=bins)
        curated = self.length[self.kept & ~np.isnan(self.length)]
        return LengthHistogram(self.length_unit, edges.tolist(), np.histogram(length, edges)[0].tolist(),
                               np.histogram(curated, edges)[0].tolist())

    @staticmethod
    def _task_means(rows: Rows, mask: np.ndarray) -> np.ndarray:
        has = mask & ~np.isnan(rows.reward)
        n = np.bincount(rows.task[has], minlength=len(rows.task_ids))
        s = np.bincount(rows.task[has], weights=rows.reward[has], minlength=len(rows.task_ids))
        return np.divide(s, n, out=np.full(len(n), np.nan), where=n > 0)

    def _pass_rate(self, rows: Rows) -> dict[str, Any]:
        """Tasks by how many of their scored rollouts passed (``rollgen.metrics.passed``): none, all, some; and the
        histogram of each task's mean reward."""
        m = self.task_mean[~np.isnan(self.task_mean)]
        has = ~np.isnan(rows.reward)
        n = np.bincount(rows.task[has], minlength=len(rows.task_ids))
        ok = np.bincount(rows.task[has], weights=rows.reward[has] >= pass_floor(), minlength=len(rows.task_ids))
        scored = n > 0
        never, always = int((scored & (ok == 0)).sum()), int((scored & (ok == n)).sum())
        return {"tasks": len(m), "never_solved": never, "always_solved": always, "mixed": len(m) - never - always,
                "mean_of_tasks": round(float(m.mean()), 4) if len(m) else None,
                "histogram": np.histogram(m, BINS)[0].tolist()}

    def _by_metadata(self, rows: Rows, kept: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        if not self.task_meta:  # no task has any of the keys
            return out
        curated_mean = self._task_means(rows, kept)
        for key in BREAKDOWN:
            values = [_label(self.task_meta.get(t, {}).get(key)) for t in rows.task_ids]
            if all(v is None for v in values):
                continue
            groups: dict[str, list[int]] = {}
            for code, v in enumerate(values):
                groups.setdefault("(none)" if v is None else v, []).append(code)
            rollouts = np.bincount(rows.task, minlength=len(values))
            kept_n = np.bincount(rows.task[kept], minlength=len(values))
            table = []
            for value, codes in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:20]:
                idx = np.array(codes)
                means, cmeans = self.task_mean[idx], curated_mean[idx]
                table.append({"value": value, "tasks": len(codes), "rollouts": int(rollouts[idx].sum()),
                              "curated": int(kept_n[idx].sum()),
                              "mean_reward": _round(np.nanmean(means) if (~np.isnan(means)).any() else None),
                              "curated_mean_reward": _round(np.nanmean(cmeans) if (~np.isnan(cmeans)).any() else None)})
            out[key] = table
        return out


def _label(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _round(x: Any) -> float | None:
    return None if x is None else round(float(x), 4)


def _dup_rate(keys: np.ndarray) -> float | None:
    return round(1.0 - count_distinct(keys) / len(keys), 4) if len(keys) else None


def count_distinct(x: np.ndarray) -> int:
    """Distinct values, by sorting (numpy's hash-based ``unique`` is several times slower on uint64)."""
    if len(x) == 0:
        return 0
    s = np.sort(x)
    return 1 + int(np.count_nonzero(s[1:] != s[:-1]))
