"""Format: curated rollouts → dataset rows (SFT chat messages or DPO preference pairs), split by task.

All rollouts of a task land in the same split (train or validation), chosen by a seeded hash of the
task id, so no task leaks across splits.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rollgen.config import DpoFormat, SftFormat

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


Entry = tuple[float | None, int, int]  # (reward, repeat, byte offset of the rollout's line)
Loader = Callable[[int], dict[str, Any]]


def _index(path: os.PathLike[str]) -> dict[str, list[Entry]]:
    """Per task, the reward, repeat and file offset of each rollout: a few bytes each, not whole rollouts."""
    groups: dict[str, list[Entry]] = defaultdict(list)
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                groups[r["task_id"]].append((r.get("reward"), r["repeat"], offset))
            offset += len(line)
    return groups


def _sft_rows(cfg: SftFormat, task_id: str, entries: list[Entry], load: Loader) -> Iterator[dict[str, Any]]:
    for _, _, offset in sorted(entries, key=lambda e: (-(e[0] or 0.0), e[1]))[: cfg.best_k]:
        r = load(offset)
        messages = list(r["messages"])
        if cfg.system_prompt and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": cfg.system_prompt})
        yield {"messages": messages, "task_id": task_id, "reward": r.get("reward")}


def _dpo_rows(cfg: DpoFormat, task_id: str, entries: list[Entry], load: Loader) -> Iterator[dict[str, Any]]:
    """Best vs worst of a task, when the reward margin is at least ``min_quality_difference``."""
    ranked = sorted((e for e in entries if e[0] is not None), key=lambda e: (-e[0], e[1]))  # type: ignore[operator]
    if len(ranked) < 2 or ranked[0][0] - ranked[-1][0] < cfg.min_quality_difference - 1e-12:  # type: ignore[operator]
        return
    best, worst = load(ranked[0][2]), load(ranked[-1][2])
    margin = best["reward"] - worst["reward"]
    if best["completion"] == worst["completion"]:
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
    """Yield (task_id, row) for every dataset row the curated rollouts give, reading only the rollouts used."""
    make = _sft_rows if cfg.kind == "sft" else _dpo_rows
    groups = _index(curated)
    with open(curated, "rb") as f:
        def load(offset: int) -> dict[str, Any]:
            f.seek(offset)
            return json.loads(f.readline())

        for task_id in sorted(groups):
            for row in make(cfg, task_id, groups[task_id], load):  # type: ignore[arg-type]
                yield task_id, row


def write_dataset(cfg: SftFormat | DpoFormat, curated: os.PathLike[str], out_dir: Path, seed: int) -> dict[str, int]:
    """Stream ``train.jsonl`` and ``validation.jsonl`` (each written to a temp file, then renamed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "validation": 0}
    tmp = {name: out_dir / f"{name}.jsonl.tmp" for name in counts}
    files = {name: open(path, "w", encoding="utf-8") for name, path in tmp.items()}  # noqa: SIM115
    try:
        for task_id, row in build_rows(cfg, curated):
            split = split_of(task_id, cfg.validation_fraction, seed)
            files[split].write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[split] += 1
    finally:
        for f in files.values():
            f.close()
    for name, path in tmp.items():
        os.replace(path, out_dir / f"{name}.jsonl")
    return counts
