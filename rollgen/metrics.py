"""Run metrics shared by reports, sweep summaries and ``rollgen compare``.

``pass_at_k`` is the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models
Trained on Code": with n samples of which c are correct, pass@k = 1 - C(n-c, k) / C(n, k).
``maj_at_k`` is the expected accuracy of a majority vote over k samples drawn without replacement,
computed exactly by enumerating subsets when that is cheap and by the mean over the first
``n // k`` disjoint groups otherwise.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

__all__ = ["maj_at_k", "pass_at_k", "pass_curves", "repeat_groups", "run_metrics"]

PASS = 1.0 - 1e-9


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples (of n, c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(answers: list[tuple[str | None, bool]], k: int, max_subsets: int = 2000) -> float:
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


def pass_curves(groups: dict[str, list[tuple[str | None, bool]]]) -> dict[str, dict[int, float]]:
    """Mean pass@k and maj@k over tasks, for k = 1 .. the smallest number of samples per task."""
    if not groups:
        return {"pass@k": {}, "maj@k": {}}
    kmax = min(len(v) for v in groups.values())
    curves: dict[str, dict[int, float]] = {"pass@k": {}, "maj@k": {}}
    for k in range(1, kmax + 1):
        curves["pass@k"][k] = sum(pass_at_k(len(v), sum(ok for _, ok in v), k) for v in groups.values()) / len(groups)
        curves["maj@k"][k] = sum(maj_at_k(v, k) for v in groups.values()) / len(groups)
    return curves


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def repeat_groups(rollouts: str | Path) -> dict[str, list[tuple[str | None, bool]]]:
    """Per task, (extracted answer, passed) of each verified rollout, streamed from a rollouts file."""
    groups: dict[str, list[tuple[str | None, bool]]] = defaultdict(list)
    with open(rollouts, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("reward") is not None:
                groups[r["task_id"]].append(((r.get("reward_details") or {}).get("extracted"), r["reward"] >= PASS))
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
        with open(run_dir / "rollouts.jsonl", encoding="utf-8") as f:
            calls, retries = sum(json.loads(line).get("turns", 0) for line in f), None
    curves = {k: {int(n): v for n, v in c.items()} for k, c in report.get("pass_at_k", {}).items()} or \
        pass_curves(repeat_groups(run_dir / "rollouts.jsonl"))
    rows = [row for split in ("train", "validation", "test") for row in _jsonl(run_dir / "dataset" / f"{split}.jsonl")]
    margins = [row["margin"] for row in rows if isinstance(row.get("margin"), (int, float))]
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
