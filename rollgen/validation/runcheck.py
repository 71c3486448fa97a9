"""``rollgen validate RUN_DIR``: the reward distribution of a collected run, and agreement between two
verifiers on the same rollouts (Cohen's kappa).

Red flags it surfaces (NeMo Gym's "validate verification" recipe, computed instead of eyeballed): all
rewards 0 or all 1, a large share of rollouts no rule could parse, a share caught by guards, two
verifiers that disagree.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

from rollgen.verifiers import undecided

__all__ = ["agreement", "cohen_kappa", "reward_stats"]

BINS = 10


def reward_stats(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Histogram (10 bins over [0, 1]), shares of 0, 1 and partial rewards, unparseable and guard shares."""
    statuses: Counter[str] = Counter()
    verifiers: Counter[str] = Counter()
    guards: Counter[str] = Counter()
    hist = [0] * BINS
    rewards: list[float] = []
    unparseable = guarded = 0
    for r in rows:
        statuses[r.get("status", "?")] += 1
        reward = r.get("reward")
        if reward is None:
            continue
        rewards.append(reward)
        hist[min(BINS - 1, int(reward * BINS))] += 1
        verifiers[r.get("verifier") or "?"] += 1
        details = r.get("reward_details") or {}
        for g in details.get("guards") or []:
            guards[g] += 1
        guarded += bool(details.get("guards"))
        if undecided(details):
            unparseable += 1
    n = len(rewards)
    share = (lambda k: round(k / n, 6) if n else None)
    flags = []
    if n and all(x == rewards[0] for x in rewards):
        flags.append(f"every reward is {rewards[0]:g}: the verifier may be broken or the tasks too easy/hard")
    if n and unparseable / n > 0.2:
        flags.append(f"{unparseable / n:.0%} of rewarded rollouts had no answer the verifier could parse")
    if n > 1 and statistics.pstdev(rewards) < 0.1 and len(set(rewards)) > 1:
        flags.append("reward standard deviation below 0.1: little signal to learn from")
    return {
        "rollouts": sum(statuses.values()),
        "rewarded": n,
        "by_status": dict(sorted(statuses.items())),
        "by_verifier": dict(verifiers.most_common()),
        "mean_reward": round(statistics.fmean(rewards), 6) if n else None,
        "std_reward": round(statistics.pstdev(rewards), 6) if n else None,
        "share_0": share(sum(x <= 0.0 for x in rewards)),
        "share_1": share(sum(x >= 1.0 for x in rewards)),
        "share_partial": share(sum(0.0 < x < 1.0 for x in rewards)),
        "share_unparseable": share(unparseable),
        "share_guarded": share(guarded),
        "guards": dict(guards.most_common()),
        "histogram": [{"bin": f"[{i / BINS:.1f}, {(i + 1) / BINS:.1f}{']' if i == BINS - 1 else ')'}", "count": c}
                      for i, c in enumerate(hist)],
        "red_flags": flags,
    }


def cohen_kappa(a: list[bool], b: list[bool]) -> float | None:
    """Cohen's kappa of two binary labelings; None when chance agreement is 1 (both constant and equal)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    po = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def agreement(pairs: list[tuple[dict[str, Any], dict[str, Any]]], threshold: float, examples: int = 5) -> dict[str, Any]:
    """How often verifiers A and B agree on the same rollouts (pass = reward >= ``threshold``)."""
    both = [(x, y) for x, y in pairs if x.get("reward") is not None and y.get("reward") is not None]
    a = [x["reward"] >= threshold for x, _ in both]
    b = [y["reward"] >= threshold for _, y in both]
    table = Counter(f"A {'pass' if p else 'fail'} / B {'pass' if q else 'fail'}" for p, q in zip(a, b))
    kappa = cohen_kappa(a, b)
    disagreements = [
        {"id": x["id"], "reward_a": x["reward"], "reward_b": y["reward"],
         "extracted_a": (x.get("reward_details") or {}).get("extracted"),
         "extracted_b": (y.get("reward_details") or {}).get("extracted"),
         "completion_tail": (x.get("completion") or "")[-200:]}
        for (x, y), p, q in zip(both, a, b) if p != q
    ]
    return {
        "compared": len(both),
        "not_compared": len(pairs) - len(both),
        "threshold": threshold,
        "agreement": round(sum(p == q for p, q in zip(a, b)) / len(both), 6) if both else None,
        "cohen_kappa": None if kappa is None else round(kappa, 6),
        "mean_abs_reward_diff": round(statistics.fmean(abs(x["reward"] - y["reward"]) for x, y in both), 6) if both else None,
        "table": dict(sorted(table.items())),
        "disagreements": len(disagreements),
        "examples": disagreements[:examples],
    }
