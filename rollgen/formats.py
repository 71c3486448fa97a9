"""Format: curated rollouts → dataset rows (SFT chat messages or DPO preference pairs), split by task.

All rollouts of a task land in the same split (train or validation), chosen by a seeded hash of the
task id, so no task leaks across splits.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rollgen.config import DpoFormat, SftFormat
from rollgen.rundir import read_jsonl, write_jsonl

__all__ = ["build_rows", "split_of", "write_dataset"]


def split_of(task_id: str, validation_fraction: float, seed: int) -> str:
    """Deterministic split of a task: ``validation`` for about ``validation_fraction`` of task ids."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:8], "big")
    return "validation" if h / 2**64 < validation_fraction else "train"


def _prompt_len(messages: list[dict[str, Any]]) -> int:
    """Messages before the first assistant turn form the prompt."""
    for i, m in enumerate(messages):
        if m.get("role") == "assistant":
            return i
    return len(messages)


def _group(path: os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in read_jsonl(path):
        groups[r["task_id"]].append(r)
    return groups


def _sft_rows(cfg: SftFormat, task_id: str, rollouts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in sorted(rollouts, key=lambda r: (-(r.get("reward") or 0.0), r["repeat"]))[: cfg.best_k]:
        messages = list(r["messages"])
        if cfg.system_prompt and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": cfg.system_prompt})
        yield {"messages": messages, "task_id": task_id, "reward": r.get("reward")}


def _dpo_rows(cfg: DpoFormat, task_id: str, rollouts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Best vs worst of a task, when the reward margin is at least ``min_quality_difference``."""
    ranked = sorted((r for r in rollouts if r.get("reward") is not None), key=lambda r: (-r["reward"], r["repeat"]))
    if len(ranked) < 2:
        return
    best, worst = ranked[0], ranked[-1]
    margin = best["reward"] - worst["reward"]
    if margin < cfg.min_quality_difference - 1e-12 or best["completion"] == worst["completion"]:
        return
    cut = _prompt_len(best["messages"])
    yield {
        "prompt": best["messages"][:cut],
        "chosen": best["messages"][cut:],
        "rejected": worst["messages"][_prompt_len(worst["messages"]):],
        "chosen_reward": best["reward"],
        "rejected_reward": worst["reward"],
        "margin": round(margin, 6),
        "task_id": task_id,
    }


def build_rows(cfg: SftFormat | DpoFormat, curated: os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (task_id, row) for every dataset row the curated rollouts give."""
    make = _sft_rows if cfg.kind == "sft" else _dpo_rows
    for task_id, rollouts in sorted(_group(curated).items()):
        for row in make(cfg, task_id, rollouts):
            yield task_id, row


def write_dataset(cfg: SftFormat | DpoFormat, curated: os.PathLike[str], out_dir: Path, seed: int) -> dict[str, int]:
    """Write ``train.jsonl`` and ``validation.jsonl``; return row counts per split."""
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    for task_id, row in build_rows(cfg, curated):
        splits[split_of(task_id, cfg.validation_fraction, seed)].append(row)
    return {name: write_jsonl(out_dir / f"{name}.jsonl", rows) for name, rows in splits.items()}
