"""Quality: filter rollouts into ``curated.jsonl``; every dropped row goes to ``rejected.jsonl`` with a reason.

Streaming: one rollout in memory at a time. The funnel (rows in and out per filter, in order) goes
into the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from rollgen.config import QualityConfig
from rollgen.rundir import read_jsonl

__all__ = ["curate", "filters"]

Filter = tuple[str, Callable[[dict[str, Any]], str | None]]


def filters(cfg: QualityConfig) -> list[Filter]:
    """The ordered filter chain; each returns a rejection reason, or None to keep the rollout."""
    chain: list[Filter] = []
    if cfg.drop_failed:
        chain.append(("status", lambda r: None if r["status"] == "ok" else f"status={r['status']}"))

    def min_reward(r: dict[str, Any]) -> str | None:
        reward = r.get("reward")
        if reward is None:
            return "no reward"
        return None if reward >= cfg.min_reward_threshold else f"reward {reward:g} < {cfg.min_reward_threshold:g}"

    chain.append(("min_reward_threshold", min_reward))
    return chain


def curate(cfg: QualityConfig, rollouts: os.PathLike[str], curated: os.PathLike[str],
           rejected: os.PathLike[str]) -> list[dict[str, Any]]:
    """Filter ``rollouts`` into ``curated`` and ``rejected``; return the funnel."""
    chain = filters(cfg)
    funnel = [{"filter": name, "in": 0, "out": 0} for name, _ in chain]
    with open(curated, "w", encoding="utf-8") as keep, open(rejected, "w", encoding="utf-8") as drop:
        for row in read_jsonl(rollouts):
            for step, (name, check) in zip(funnel, chain):
                step["in"] += 1
                reason = check(row)
                if reason is not None:
                    drop.write(json.dumps({"filter": name, "reason": reason, "rollout": row}, ensure_ascii=False) + "\n")
                    break
                step["out"] += 1
            else:
                keep.write(json.dumps(row, ensure_ascii=False) + "\n")
    return funnel
