"""Run metrics shared by reports, sweep summaries and ``rollgen compare``.

``pass_at_k`` is the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models
Trained on Code": with n samples of which c are correct, pass@k = 1 - C(n-c, k) / C(n, k).
``maj_at_k`` is the expected accuracy of a majority vote over k samples drawn without replacement,
computed exactly by enumerating subsets when that is cheap and by the mean over the first
``n // k`` disjoint groups otherwise.

What "pass" means is defined here once (``passed``): a rollout passes when its reward reaches the pass
threshold (1.0, a fully correct answer; RL rows may set another with ``format.pass_threshold``), within float
rounding. A rollout without a reward (its request failed, or the verifier could not verify it) never
passes. The report's pass rates, pass@k and maj@k, the quality metrics' solved tasks, RL rows' ``n_passed``
and the trainers' accuracy all use it.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from rollgen.jsonl import read_jsonl

__all__ = ["PASS_THRESHOLD", "PassCurves", "maj_at_k", "pass_at_k", "pass_curves", "pass_floor", "passed",
           "repeat_groups", "run_metrics"]

PASS_THRESHOLD = 1.0  # the reward a rollout needs to pass
PASS_TOLERANCE = 1e-9  # float rounding: a combined reward of 0.9999999999999999 passes


def pass_floor(threshold: float = PASS_THRESHOLD) -> float:
    """The lowest reward that passes ``threshold``; compare arrays with it (``rewards >= pass_floor()``)."""
    return threshold - PASS_TOLERANCE


def passed(reward: float | None, threshold: float = PASS_THRESHOLD) -> bool:
    """Whether a rollout with ``reward`` passes: its reward reaches ``threshold``, within float rounding. No
    reward (a failed request, an answer the verifier could not verify) never passes."""
    return reward is not None and reward >= threshold - PASS_TOLERANCE


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples (of n, c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(answers: Sequence[tuple[Any, bool]], k: int, max_subsets: int = 2000) -> float:
    """Expected correctness of the most common answer among k of the samples (ties: the first seen).

    ``answers`` holds (extracted answer, is correct) per sample; a None answer never wins a vote.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n (n={n}, k={k})")
    if math.comb(n, k) <= max_subsets:
        subsets: Any = combinations(range(n), k)
    else:
        subsets = [range(i * k, (i + 1) * k) for i in range(n // k)]
    total = count = 0
    for subset in subsets:
        votes = Counter(answers[i][0] for i in subset if answers[i][0] is not None)
        if votes:
            winner = votes.most_common(1)[0][0]
            total += next(answers[i][1] for i in subset if answers[i][0] == winner)
        count += 1
    return total / count


def pass_curves(groups: Mapping[str, Sequence[tuple[Any, bool]]]) -> dict[str, dict[int, float]]:
    """Mean pass@k and maj@k over tasks, for k = 1 .. the smallest number of samples per task.

    ``groups``: per task, (extracted answer, passed) of each verified rollout."""
    return _curves(min((len(v) for v in groups.values()), default=0), groups.values(), len(groups))


def _curves(kmax: int, groups: Iterable[Sequence[tuple[Any, bool]]], n_groups: int) -> dict[str, dict[int, float]]:
    """The curves of ``pass_curves`` from one pass over the groups (each decoded once)."""
    if not n_groups:
        return {"pass@k": {}, "maj@k": {}}
    ks = range(1, kmax + 1)
    pass_sum, maj_sum = dict.fromkeys(ks, 0.0), dict.fromkeys(ks, 0.0)
    for v in groups:
        c = sum(ok for _, ok in v)
        for k in ks:
            pass_sum[k] += pass_at_k(len(v), c, k)
            maj_sum[k] += maj_at_k(v, k)
    return {"pass@k": {k: pass_sum[k] / n_groups for k in ks}, "maj@k": {k: maj_sum[k] / n_groups for k in ks}}


class PassCurves:
    """pass@k and maj@k gathered one verified rollout at a time, in 12 bytes each (its task's code, its answer's hash
    and whether it passed) in flat arrays, so a million rollouts need a few MB and no object per task."""

    _MASK = (1 << 61) - 1

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._task = array("i")
        self._value = array("q")

    def add(self, task_id: str, answer: Any, ok: bool, code: int | None = None) -> None:
        """One verified rollout of ``task_id``: its extracted answer (None: none) and whether it ``passed``. ``code``:
        the caller's own dense number for ``task_id`` (the same for every rollout of it), saving a lookup here."""
        if code is None:
            code = self._codes.setdefault(task_id, len(self._codes))
        self._task.append(code)
        self._value.append(self._code(answer) << 1 | bool(ok))

    @classmethod
    def _code(cls, answer: Any) -> int:
        if answer is None:
            return 0
        key = answer if isinstance(answer, str) else ("json", json.dumps(answer, sort_keys=True, default=str))
        return (hash(key) & cls._MASK) + 1  # equal answers, equal codes (maj@k only compares answers)

    def _sorted(self) -> tuple[Any, Any]:
        """The values ordered by task (tasks in the order of their first verified rollout, file order within each),
        and where each task's run of them ends: two numpy arrays, no Python object per rollout."""
        import numpy as np

        if not len(self._task):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        task = np.frombuffer(self._task, dtype=np.int32)
        first = np.full(int(task.max()) + 1, len(task), dtype=np.int64)
        np.minimum.at(first, task, np.arange(len(task)))
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        key = rank[task]
        values = np.frombuffer(self._value, dtype=np.int64)[np.argsort(key, kind="stable")]
        counts = np.bincount(key)
        return values, np.cumsum(counts[counts > 0])  # codes without a verified rollout rank last, with none

    @staticmethod
    def _groups(values: Any, ends: Any, chunk: int = 1 << 14) -> Iterator[list[int]]:
        """Each task's values as a list, made ``chunk`` tasks at a time (a million rollouts are never one list)."""
        start = 0
        for c in range(0, len(ends), chunk):
            block_ends = ends[c:c + chunk]
            block = values[start:int(block_ends[-1])].tolist()
            at = 0
            for end in (block_ends - start).tolist():
                yield block[at:end]
                at = end
            start = int(block_ends[-1])

    def curves(self) -> dict[str, dict[int, float]]:
        values, ends = self._sorted()
        kmax = int(min(ends[0], (ends[1:] - ends[:-1]).min(initial=ends[0]))) if len(ends) else 0
        decoded = ([(c >> 1 or None, bool(c & 1)) for c in codes] for codes in self._groups(values, ends))
        return _curves(kmax, decoded, len(ends))


def repeat_groups(rollouts: str | Path) -> dict[str, list[tuple[str | None, bool]]]:
    """Per task, (extracted answer, passed) of each verified rollout, streamed from a rollouts file."""
    groups: dict[str, list[tuple[str | None, bool]]] = {}
    for r in read_jsonl(rollouts):
        if r.get("reward") is not None:
            groups.setdefault(r["task_id"], []).append(((r.get("reward_details") or {}).get("extracted"),
                                                        passed(r["reward"])))
    return groups


def run_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The headline numbers of one run, flat, from its report and files (used by sweeps and compare).

    A number the report holds is taken from it (never recomputed another way), so compare, sweep summaries
    and report.md agree.
    """
    run_dir = Path(run_dir)
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    c = report["collection"]
    if "calls" in report:  # requests this run sent; reused rollouts cost none, retries are counted apart
        calls, retries = report["calls"]["model_calls"], report["calls"]["retries"]
    else:  # a report from before rollgen counted requests: every turn of every rollout
        calls, retries = sum(r.get("turns", 0) for r in read_jsonl(run_dir / "rollouts.jsonl")), None
    curves = {k: {int(n): v for n, v in c.items()} for k, c in report.get("pass_at_k", {}).items()} or \
        pass_curves(repeat_groups(run_dir / "rollouts.jsonl"))
    splits = [run_dir / "dataset" / f"{split}.jsonl" for split in ("train", "validation", "test")]
    margins = [row["margin"] for split in splits if split.is_file() for row in read_jsonl(split)
               if isinstance(row.get("margin"), (int, float))]
    distinct = ((report.get("quality") or {}).get("distinct") or {}).get("distinct_2") or {}
    dataset_rows = report["kept"].get("dataset_rows") or 0
    return {
        "status": report["status"],
        "format": report.get("format"),
        "rollouts": c["rollouts"],
        "mean_reward": c["mean_reward"],
        "pass_rate": c["pass_rate"],
        "pass@1": curves["pass@k"].get(1),
        f"pass@{max(curves['pass@k'], default=1)}": curves["pass@k"].get(max(curves["pass@k"], default=1)),
        "kept_after_quality": report["kept"].get("curated"),
        "dataset_rows": dataset_rows,
        "sft_rows": dataset_rows if report.get("format") == "sft" else 0,
        "dpo_pairs": dataset_rows if report.get("format") == "dpo" else 0,
        "mean_margin": round(sum(margins) / len(margins), 6) if margins else None,
        "distinct_2": distinct.get("curated"),  # the quality stage's number, as report.md shows it
        "tokens": c["tokens"].get("total_tokens", 0),
        "model_calls": calls,
        "retries": retries,
        "dpo_pairs_per_1k_calls": round(1000 * sum(m >= 0.1 for m in margins) / calls, 3) if calls else None,
        "wall_time_s": report.get("wall_time_s"),
        "reused_rollouts": (report.get("resume") or {}).get("reused", 0),
    }
