"""Exact and near (MinHash LSH) deduplication; the best-rewarded member of each cluster is kept.

``field: prompt`` works on tasks: tasks with the same (or a near-identical) prompt are one cluster, the
task with the highest mean reward keeps its rollouts and the others lose theirs; several answers to
one task are not duplicates. ``completion`` compares completions across all tasks, and
``prompt_completion`` the pair (so near-identical answers to one prompt collapse to the best one).

The first pass stores 8 bytes (exact) or one uint32 signature of ``num_perm`` values (near) per row or
per task; clusters are formed afterwards, over the rows still alive, best reward first.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np

from rollgen import config as c
from rollgen.quality.groupfilters import task_stats
from rollgen.quality.text import MinHasher, exact_key, mix, shingles
from rollgen.quality.view import Reason, Rows, RowView

__all__ = ["BandIndex", "ExactDedup", "NearDedup"]


def _units(cand: np.ndarray, rows: Rows, by_task: bool) -> tuple[np.ndarray, np.ndarray]:
    """The units to cluster, best first, and for each cand row its unit's position in that order.

    Units are rows, or tasks (by mean reward) for ``field: prompt``; ties go to the earlier one.
    """
    if not by_task:
        order = np.lexsort((cand, -np.nan_to_num(rows.reward[cand], nan=-np.inf)))
        unit_of = np.empty(len(cand), dtype=np.int64)
        unit_of[order] = np.arange(len(cand))
        return cand[order], unit_of
    group, tasks, _, mean, _ = task_stats(cand, rows)
    order = np.lexsort((tasks, -np.nan_to_num(mean, nan=-np.inf)))
    rank = np.empty(len(tasks), dtype=np.int64)
    rank[order] = np.arange(len(tasks))
    return tasks[order], rank[group]


class _Dedup:
    def __init__(self, field: str):
        self.by_task = field == "prompt"
        self.field = field
        self._rows = array("q")  # observed row indices, increasing

    def _who(self, unit: int, rows: Rows) -> str:
        return f"task {rows.task_ids[unit]}" if self.by_task else f"rollout {rows.ids[unit]}"

    def _verdict(self, cand: np.ndarray, rows: Rows, units: np.ndarray, unit_of: np.ndarray,
                 dup_of: dict[int, tuple[int, str]], label: str) -> dict[int, Reason]:
        out = {}
        for j, u in enumerate(unit_of.tolist()):
            if u in dup_of:
                rep, how = dup_of[u]
                out[int(cand[j])] = label, f"{how} {self._who(int(units[rep]), rows)}"
        return out


class ExactDedup(_Dedup):
    def __init__(self, p: c.ExactDedupFilter):
        super().__init__(p.field)
        self._keys = array("Q")
        self._task_key: dict[int, int] = {}

    def observe(self, v: RowView) -> None:
        if self.by_task:
            if v.task not in self._task_key:
                self._task_key[v.task] = int.from_bytes(exact_key(v.prompt_words), "little")
            return
        self._rows.append(v.index)
        self._keys.append(v.pair_key if self.field == "prompt_completion"
                          else int.from_bytes(exact_key(v.completion_words), "little"))

    def decide(self, cand: np.ndarray, rows: Rows) -> dict[int, Reason]:
        units, unit_of = _units(cand, rows, self.by_task)
        if self.by_task:
            keys = np.array([self._task_key[t] for t in units.tolist()], dtype=np.uint64)
        else:
            keys = np.frombuffer(self._keys, dtype=np.uint64)[np.searchsorted(np.frombuffer(self._rows, np.int64), units)]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rep = first[inverse]
        dup_of = {u: (int(rep[u]), "same words as") for u in np.flatnonzero(rep != np.arange(len(units))).tolist()}
        return self._verdict(cand, rows, units, unit_of, dup_of, "exact duplicate")


class NearDedup(_Dedup):
    def __init__(self, p: c.NearDedupFilter):
        super().__init__(p.field)
        self.p = p
        self.hasher = MinHasher(p.num_perm, p.seed, p.scheme)
        self._sigs = bytearray()
        self._task_sig: dict[int, np.ndarray] = {}

    def _prompt_sig(self, v: RowView) -> np.ndarray:
        sig = self._task_sig.get(v.task)
        if sig is None:
            sig = self._task_sig[v.task] = self.hasher.signature(shingles(v.prompt_words, self.p.ngram))
        return sig

    def observe(self, v: RowView) -> None:
        if self.by_task:
            self._prompt_sig(v)
            return
        sig = v.signature(self.hasher, self.p.ngram)
        if self.field == "prompt_completion":  # MinHash of a union: element-wise minimum
            sig = np.minimum(sig, self._prompt_sig(v))
        self._rows.append(v.index)
        self._sigs += sig.tobytes()

    def decide(self, cand: np.ndarray, rows: Rows) -> dict[int, Reason]:
        units, unit_of = _units(cand, rows, self.by_task)
        if self.by_task:
            sigs = np.stack([self._task_sig[t] for t in units.tolist()]) if len(units) else np.zeros((0, 1), np.uint32)
        else:
            table = np.frombuffer(self._sigs, dtype=np.uint32).reshape(-1, self.p.num_perm)
            sigs = table[np.searchsorted(np.frombuffer(self._rows, np.int64), units)]
        sigs = self.hasher.densify(sigs)
        index = BandIndex(self.p.threshold, self.p.num_perm)
        dup_of: dict[int, tuple[int, str]] = {}
        for u, keys in enumerate(index.keys(sigs)):
            best, best_j = -1, 0.0
            for k in index.query(keys):
                j = MinHasher.jaccard(sigs[u], sigs[k])
                if j > best_j:
                    best, best_j = k, j
            if best >= 0 and best_j >= self.p.threshold:  # LSH finds candidates; the estimate decides
                dup_of[u] = best, f"~{best_j:.2f} Jaccard with"
            else:
                index.insert(u, keys)
        return self._verdict(cand, rows, units, unit_of, dup_of, "near duplicate")


class BandIndex:
    """MinHash LSH: ``b`` bands of ``r`` values, a unit is a candidate when one whole band matches.

    ``b`` and ``r`` come from datasketch's ``MinHashLSH`` for the threshold, weighted for recall
    (datasketch's equal weights find only ~40% of the pairs right at the threshold; a false hit costs
    one signature comparison). The bands are hashed for all units at once with numpy and kept in one
    dict per band, int -> unit (or a list of units), which is about 8x faster than datasketch's own
    index (bytes keys and a set per bucket) and a third of its memory.
    """

    def __init__(self, threshold: float, num_perm: int):
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
        self.b, self.r = lsh.b, lsh.r
        self.tables: list[dict[int, Any]] = [{} for _ in range(self.b)]
        self._weights = mix(np.arange(1, self.r + 1, dtype=np.uint64))
        self._salt = mix(np.arange(1000, 1000 + self.b, dtype=np.uint64))

    def keys(self, sigs: np.ndarray, chunk: int = 8192) -> Iterator[list[int]]:
        """One key per band for each signature, computed a chunk of signatures at a time."""
        for start in range(0, len(sigs), chunk):
            bands = sigs[start:start + chunk, : self.b * self.r].reshape(-1, self.b, self.r).astype(np.uint64)
            yield from mix((bands * self._weights).sum(axis=2) + self._salt).tolist()

    def query(self, keys: list[int]) -> set[int]:
        found: set[int] = set()
        for table, k in zip(self.tables, keys):
            hit = table.get(k)
            if hit is not None:
                if isinstance(hit, list):
                    found.update(hit)
                else:
                    found.add(hit)
        return found

    def insert(self, unit: int, keys: list[int]) -> None:
        for table, k in zip(self.tables, keys):
            hit = table.get(k)
            if hit is None:
                table[k] = unit
            elif isinstance(hit, list):
                hit.append(unit)
            else:
                table[k] = [hit, unit]
