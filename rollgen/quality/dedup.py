"""Exact and near (MinHash LSH) deduplication; the best-rewarded member of each cluster is kept.

``field: prompt`` works on tasks: tasks with the same (or a near-identical) prompt are one cluster, the
task with the highest mean reward keeps its rollouts and the others lose theirs; several answers to
one task are not duplicates. ``completion`` compares completions across all tasks, and
``prompt_completion`` the pair (so near-identical answers to one prompt collapse to the best one).

What keeps distinct problems apart:

- two tasks whose gold answers differ (``answers``, read from the run's tasks) are never merged, nor
  their rollouts;
- prompt shingles are salted with the prompt's numbers and math symbols (``text.prompt_shingles``), so
  "Calculate 5 + 9." and "Calculate -9 + 9." share nothing;
- LSH and the MinHash estimate only propose candidates (down to a few standard errors below the
  threshold); a merge needs the exact Jaccard similarity of the two shingle sets, computed from the rows
  read back from the file, to reach the threshold.

What they prevented is counted in ``notes`` (the funnel shows it). The first pass stores 8 bytes
(exact) or, for near, the LSH band keys (8 bytes a band) per row or per task, the signatures themselves going
to a temp file (``lsh.SignatureStore``); clusters are formed afterwards, over the rows still alive, best
reward first.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from rollgen import config as c
from rollgen.quality.groupfilters import task_stats
from rollgen.quality.registry import FILTERS, GroupFilter, Inputs, Verdicts
from rollgen.quality.lsh import BandIndex, SignatureStore, slack
from rollgen.quality.text import MinHasher, exact_key, mix, prompt_shingles, shingles, sorted_common, sorted_set, words
from rollgen.quality.view import Rows, RowView, prompt_text

__all__ = ["ExactDedup", "NearDedup"]

MAX_CONFIRM = 8  # candidates checked with the exact Jaccard per unit, best estimate first
SHINGLE_CACHE = 4096  # shingle sets kept (cluster representatives are compared again and again)
KEPT_APART = "kept apart: same or near text, different gold answers"
ESTIMATE_ONLY = "kept: estimate reached the threshold, exact Jaccard did not"


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


class _Dedup(GroupFilter):
    observes = True  # hashes every row that reaches it in pass 1

    def __init__(self, field: str, answers: Mapping[str, int] | None):
        super().__init__()
        self.by_task = field == "prompt"
        self.field = field
        self.answers = answers or {}
        self._rows = array("q")  # observed row indices, increasing

    @classmethod
    def from_config(cls, params: Any, cfg: c.QualityConfig, inputs: Inputs) -> _Dedup:
        return cls(params, inputs.answers)  # different gold answers keep look-alike tasks apart

    def _who(self, unit: int, rows: Rows) -> str:
        return f"task {rows.task_ids[unit]}" if self.by_task else f"rollout {rows.row_id(unit)}"

    def _answer_keys(self, units: np.ndarray, rows: Rows) -> np.ndarray:
        """The gold-answer key of each unit's task (0: unknown)."""
        if not self.answers:
            return np.zeros(len(units), dtype=np.uint64)
        by_code = np.fromiter((self.answers.get(t, 0) for t in rows.codes), dtype=np.uint64, count=len(rows.codes))
        return by_code[units if self.by_task else rows.task[units]]

    def _verdict(self, cand: np.ndarray, rows: Rows, units: np.ndarray, unit_of: np.ndarray,
                 rep: np.ndarray, how: np.ndarray, hows: list[str], label: str) -> Verdicts:
        """The rows of duplicate units: unit ``u`` is a duplicate of unit ``rep[u]`` (-1: kept), said as ``hows[how[u]]``;
        one reason per (representative, wording), shared by the rows that have it."""
        rep_of = rep[unit_of]
        dropped = rep_of >= 0
        key = rep_of[dropped] * len(hows) + how[unit_of][dropped]
        pairs, which = np.unique(key, return_inverse=True)
        reasons = [(label, f"{hows[k % len(hows)]} {self._who(int(units[k // len(hows)]), rows)}") for k in pairs.tolist()]
        return Verdicts(cand[dropped].astype(np.int64), which.astype(np.int64), reasons)


@FILTERS.register("exact_dedup")
class ExactDedup(_Dedup):
    def __init__(self, p: c.ExactDedupFilter, answers: Mapping[str, int] | None = None):
        super().__init__(p.field, answers)
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

    def decide(self, cand: np.ndarray, rows: Rows) -> Verdicts:
        units, unit_of = _units(cand, rows, self.by_task)
        if self.by_task:
            text_keys = np.array([self._task_key[t] for t in units.tolist()], dtype=np.uint64)
        else:
            text_keys = np.frombuffer(self._keys, dtype=np.uint64)[np.searchsorted(np.frombuffer(self._rows, np.int64), units)]
        answers = self._answer_keys(units, rows)
        keys = text_keys ^ mix(answers) if answers.any() else text_keys
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rep = first[inverse]
        if keys is not text_keys and (apart := len(first) - len(sorted_set(text_keys))) > 0:
            self.notes[KEPT_APART] += apart
        rep = np.where(rep != np.arange(len(units)), rep, -1)
        return self._verdict(cand, rows, units, unit_of, rep, np.zeros(len(units), np.int64), ["same words as"],
                             "exact duplicate")


@FILTERS.register("near_dedup")
class NearDedup(_Dedup):
    def __init__(self, p: c.NearDedupFilter, answers: Mapping[str, int] | None = None):
        super().__init__(p.field, answers)
        self.p = p
        self.hasher = MinHasher(p.num_perm, p.seed, p.scheme)
        self.index = BandIndex(p.threshold, p.num_perm)
        self.store = SignatureStore(self.hasher, self.index)  # one signature per observed row, or per task (prompt)
        self._seen = bytearray()  # by task code: 1 once its prompt was hashed (``field: prompt``)
        self._task_row = array("q")  # by task code: a row of it, to read its prompt back (``field: prompt``)
        self._task_unit = array("q")  # by task code: its place in the store (``field: prompt``)
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()  # prompt signatures of recent tasks
        self._sets: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def _prompt_sig(self, v: RowView) -> np.ndarray:
        """The prompt's signature; the rollouts of a task come close together, so recent tasks' are kept."""
        sig = self._recent.get(v.task)
        if sig is None:
            sig = self._recent[v.task] = v.prompt_signature(self.hasher, self.p.ngram)[0]
            if len(self._recent) > SHINGLE_CACHE:
                self._recent.popitem(last=False)
        return sig

    def observe(self, v: RowView) -> None:
        if self.by_task:
            while len(self._seen) <= v.task:
                self._seen.append(0)
                self._task_row.append(-1)
                self._task_unit.append(-1)
            if not self._seen[v.task]:
                self._seen[v.task] = 1
                self._task_row[v.task] = v.index
                self._task_unit[v.task] = self.store.n
                self.store.add(v.prompt_signature(self.hasher, self.p.ngram)[0])
            return
        sig = v.signature(self.hasher, self.p.ngram)
        if self.field == "prompt_completion":  # MinHash of a union: element-wise minimum
            sig = np.minimum(sig, self._prompt_sig(v))
        self._rows.append(v.index)
        self.store.add(sig)

    def _prompt_set(self, task: int, row_index: int, rows: Rows) -> np.ndarray:
        """A task's exact prompt shingles (``sorted_set``), from a row of it (``row_index``) read back from the file."""
        got = self._get(("prompt", task))
        if got is None:
            row = rows.read(row_index)
            got = self._put(("prompt", task), sorted_set(
                prompt_shingles(prompt_text(row.get("messages")), self.p.ngram)))
        return got

    def _completion_set(self, unit: int, rows: Rows) -> np.ndarray:
        """A row's exact completion shingles (``sorted_set``), read back from the rollouts file."""
        got = self._get(("unit", unit))
        if got is None:
            text = rows.read(unit).get("completion")
            got = self._put(("unit", unit), sorted_set(
                shingles(words(text if isinstance(text, str) else ""), self.p.ngram)))
        return got

    def _jaccard(self, a: int, b: int, rows: Rows) -> float:
        """Exact Jaccard similarity of two units' shingles (prompt shingles are salted apart from completion
        ones, so the two parts add up). Most pairs are two answers to one prompt: its part is its size."""
        common = total = 0
        if self.field != "completion":
            ta, tb = (a, b) if self.by_task else (int(rows.task[a]), int(rows.task[b]))
            ra, rb = (self._task_row[a], self._task_row[b]) if self.by_task else (a, b)
            if ta == tb:
                common = total = len(self._prompt_set(ta, ra, rows))
            else:
                pa, pb = self._prompt_set(ta, ra, rows), self._prompt_set(tb, rb, rows)
                common = sorted_common(pa, pb)
                total = len(pa) + len(pb) - common
        if self.field != "prompt":
            ca, cb = self._completion_set(a, rows), self._completion_set(b, rows)
            shared = sorted_common(ca, cb)
            common += shared
            total += len(ca) + len(cb) - shared
        return common / total if total else 1.0

    def _get(self, key: tuple[str, int]) -> np.ndarray | None:
        got = self._sets.get(key)
        if got is not None:
            self._sets.move_to_end(key)
        return got

    def _put(self, key: tuple[str, int], value: np.ndarray) -> np.ndarray:
        self._sets[key] = value
        if len(self._sets) > SHINGLE_CACHE:
            self._sets.popitem(last=False)
        return value

    def decide(self, cand: np.ndarray, rows: Rows) -> Verdicts:
        units, unit_of = _units(cand, rows, self.by_task)
        if self.by_task:
            at = np.frombuffer(self._task_unit, dtype=np.int64)[units]
        else:
            at = np.searchsorted(np.frombuffer(self._rows, np.int64), units)
        keys, sigs = self.store.keys(), self.store.signatures()
        answers = self._answer_keys(units, rows).tolist()
        floor = self.p.threshold - slack(self.p.threshold, self.p.num_perm)
        rep = np.full(len(units), -1, dtype=np.int64)  # per unit: the unit it duplicates (-1: kept)
        how = np.zeros(len(units), dtype=np.int64)  # per unit: its wording in ``hows``
        hows: dict[str, int] = {}
        try:
            for u, slots in self.index.walk(keys, at):
                found = self.index.query(slots)
                if found and (found := self._confirm(u, found, sigs, at, answers, floor, units, rows)) is not None:
                    rep[u], how[u] = found[0], hows.setdefault(f"{found[1]:.2f} Jaccard with", len(hows))
                else:
                    self.index.insert(u, slots)
        finally:
            del sigs
            self.store.close()
            self._sets.clear()
            self._recent.clear()
        return self._verdict(cand, rows, units, unit_of, rep, how, list(hows) or [""], "near duplicate")

    def _confirm(self, u: int, found: set[int], sigs: np.ndarray, at: np.ndarray, answers: list[int], floor: float,
                 units: np.ndarray, rows: Rows) -> tuple[int, float] | None:
        """The best candidate whose exact Jaccard with ``u`` reaches the threshold and whose gold answer agrees
        (``sigs[at[u]]``: ``u``'s signature)."""
        t = self.p.threshold
        ks = np.fromiter(found, dtype=np.int64, count=len(found))
        share = np.count_nonzero(sigs[at[ks]] == sigs[at[u]], axis=1) / self.p.num_perm  # ``MinHasher.jaccard`` of each
        best = np.lexsort((ks, -share))[:MAX_CONFIRM]  # best estimate first, then the earlier unit
        estimates = list(zip((-share[best]).tolist(), ks[best].tolist()))
        apart = estimate_only = False
        todo = []
        for neg, k in estimates[:MAX_CONFIRM]:
            if -neg < floor:
                break
            if answers[u] and answers[k] and answers[u] != answers[k]:
                apart = apart or -neg >= t
            else:
                todo.append((-neg, k))
        for estimate, k in todo:
            j = self._jaccard(int(units[u]), int(units[k]), rows)
            if j >= t:
                return k, j
            estimate_only = estimate_only or estimate >= t
        if apart:
            self.notes[KEPT_APART] += 1
        if estimate_only:
            self.notes[ESTIMATE_ONLY] += 1
        return None
