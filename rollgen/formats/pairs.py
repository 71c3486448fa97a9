"""DPO pair candidates within one task, by strategy (frameworks.md D.6), on rewards alone.

Each strategy yields (chosen, rejected) index pairs in the order it prefers them; the caller drops pairs
whose texts are the same and keeps the first ``cap``. Every pair yielded has
``rewards[chosen] - rewards[rejected] >= min_margin`` (up to ``EPS`` of float noise) and, because
``min_margin > 0``, never two equal rewards.

- ``best_vs_worst``: the widest margin first (argmax vs argmin, as distilabel and West-of-N), then the
  next widest, so a pair with identical texts falls back to the next best pair.
- ``all_pairs``: every qualifying pair, widest margin first.
- ``best_vs_random_lower``: the best rollout against the lower ones in a seeded random order
  (UltraFeedback-binarized, Atropos); then the second best, and so on.

Ties are broken by position (the repeat order), so the result depends only on the inputs and the rng.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Literal

__all__ = ["EPS", "Strategy", "candidate_pairs", "default_cap"]

EPS = 1e-9  # 0.3 - 0.2 is 0.09999999999999998 in floats; it still clears a 0.1 margin
Strategy = Literal["best_vs_worst", "all_pairs", "best_vs_random_lower"]


def default_cap(strategy: Strategy, cap: int | None) -> int | None:
    """Pairs per task at most: ``cap`` when set, else 1, or no limit for ``all_pairs``."""
    if cap is not None:
        return cap
    return None if strategy == "all_pairs" else 1


def _qualifies(high: float, low: float, min_margin: float) -> bool:
    return high > low and high - low >= min_margin - EPS


def candidate_pairs(rewards: Sequence[float], min_margin: float, strategy: Strategy,
                    rng: random.Random | None = None) -> Iterator[tuple[int, int]]:
    """Index pairs ``(chosen, rejected)`` of ``rewards`` in the strategy's order of preference."""
    if min_margin <= 0:
        raise ValueError("min_margin must be positive: a pair of equal rewards teaches nothing")
    rank = sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))
    if strategy in ("best_vs_worst", "all_pairs"):
        pairs = [(c, r) for a, c in enumerate(rank) for r in rank[a + 1:]
                 if _qualifies(rewards[c], rewards[r], min_margin)]
        pairs.sort(key=lambda p: (-(rewards[p[0]] - rewards[p[1]]), p[0], p[1]))
        yield from pairs
    elif strategy == "best_vs_random_lower":
        rng = rng or random.Random(0)
        for a, c in enumerate(rank):
            lower = [r for r in rank[a + 1:] if _qualifies(rewards[c], rewards[r], min_margin)]
            rng.shuffle(lower)
            for r in lower:
                yield c, r
    else:
        raise ValueError(f"unknown DPO strategy {strategy!r}")
