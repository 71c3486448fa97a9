"""The filter chain in two streaming passes over ``rollouts.jsonl``, with bounded memory.

Pass 1 parses each row once (256 at a time, their text hashed together: ``batch.py``): row filters
run in chain order until the first that drops it; group filters (dedup, pass rate, balance) only
*observe* the rows that reach them and keep a few bytes per row or task. Then, in memory and in
chain order, every filter decides on the rows still alive at its turn, which gives the funnel.
Pass 2 copies each raw line to ``curated.jsonl`` or, wrapped with the filter and reason, to
``rejected.jsonl``, without parsing it again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rollgen import jsonl
from rollgen.config import QualityConfig
from rollgen.quality import dedup, groupfilters, rowfilters
from rollgen.quality.decontam import Decontaminate
from rollgen.quality.view import Reason, Rows, RowView

__all__ = ["build", "run_chain"]

BATCH = 256  # rows parsed and hashed together (a few MB of text features)
GROUP = {"exact_dedup", "near_dedup", "pass_rate", "zero_variance", "cap_per_task", "stratify", "kto_balance"}


def build(cfg: QualityConfig, task_meta: dict[str, dict[str, Any]],
          answers: dict[str, int] | None = None) -> list[tuple[str, Any]]:
    """``(name, filter)`` in chain order; ``answers`` (task id -> ``text.answer_key``) keeps dedup from
    merging tasks whose gold answers differ."""
    f = cfg.filters
    make = {
        "status": lambda: rowfilters.Status(f.status),
        "reward": lambda: rowfilters.Reward(f.reward, cfg.min_reward_threshold),
        "length": lambda: rowfilters.Length(f.length),
        "repetition": lambda: rowfilters.Repetition(f.repetition),
        "refusal": lambda: rowfilters.Refusal(f.refusal),
        "answer_format": lambda: rowfilters.AnswerFormat(f.answer_format),
        "decontaminate": lambda: Decontaminate(f.decontaminate),
        "exact_dedup": lambda: dedup.ExactDedup(f.exact_dedup, answers),
        "near_dedup": lambda: dedup.NearDedup(f.near_dedup, answers),
        "pass_rate": lambda: groupfilters.PassRate(f.pass_rate),
        "zero_variance": lambda: groupfilters.ZeroVariance(f.zero_variance),
        "cap_per_task": lambda: groupfilters.CapPerTask(f.cap_per_task),
        "stratify": lambda: groupfilters.Stratify(f.stratify, task_meta),
        "kto_balance": lambda: groupfilters.KtoBalance(f.kto_balance),
    }
    return [(name, make[name]()) for name in cfg.chain]


def _batches(path: Path, size: int = BATCH) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    """Parsed rows, ``size`` at a time, with the byte offset of each row's line (rows numbered as in ``_write``)."""
    batch, offsets = [], []
    for line in jsonl.lines(path):
        batch.append(jsonl.parse(path, line))
        offsets.append(line.offset)
        if len(batch) == size:
            yield batch, offsets
            batch, offsets = [], []
    if batch:
        yield batch, offsets


def run_chain(chain: list[tuple[str, Any]], rollouts: Path, curated: Path, rejected: Path,
              observers: list[Callable[[list[RowView]], None]]) -> tuple[Rows, np.ndarray, list[dict[str, Any]]]:
    """Filter ``rollouts`` into ``curated`` / ``rejected``; return the rows, who dropped each (-1: kept), the funnel.

    ``observers`` see every batch of rows in pass 1 (metrics), whatever the filters say.
    """
    rows = Rows(rollouts)
    # (position, is a row filter, the call): row filters check, dedup filters observe, the rest wait
    steps = [(pos, name not in GROUP, f.observe if name in GROUP else f.check)
             for pos, (name, f) in enumerate(chain) if name not in GROUP or hasattr(f, "observe")]
    first_fail: dict[int, tuple[int, Reason]] = {}
    for batch, offsets in _batches(rollouts):
        views = rows.add(batch, offsets)
        for observe in observers:
            observe(views)
        for view in views:
            for pos, is_row, step in steps:
                if not is_row:
                    step(view)
                elif (reason := step(view)) is not None:
                    first_fail[view.index] = pos, reason
                    break
    rows.freeze()

    dropped_by = np.full(len(rows), -1, dtype=np.int16)
    reasons: dict[int, Reason] = {}
    fail_at: dict[int, list[int]] = {}
    for i, (pos, _) in first_fail.items():
        fail_at.setdefault(pos, []).append(i)
    funnel = []
    alive = len(rows)
    try:
        for pos, (name, f) in enumerate(chain):
            if name in GROUP:
                drops = f.decide(np.flatnonzero(dropped_by < 0), rows) if alive else {}
            else:
                drops = {i: first_fail[i][1] for i in fail_at.get(pos, []) if dropped_by[i] < 0}
            for i, reason in drops.items():
                dropped_by[i] = pos
                reasons[i] = reason
            labels = Counter(label for label, _ in drops.values())
            step = {"filter": name, "in": alive, "out": alive - len(drops), "dropped": len(drops),
                    "reasons": dict(labels.most_common())}
            if getattr(f, "notes", None):  # what a filter saw but did not drop (e.g. kept apart by dedup)
                step["notes"] = dict(f.notes)
            funnel.append(step)
            alive -= len(drops)
    finally:
        rows.close()

    _write(rollouts, curated, rejected, dropped_by, reasons, [name for name, _ in chain])
    return rows, dropped_by, funnel


def _write(rollouts: Path, curated: Path, rejected: Path, dropped_by: np.ndarray, reasons: dict[int, Reason],
           names: list[str]) -> None:
    """Pass 2: each raw line to curated, or wrapped to rejected; both written to temp files, then renamed."""
    who = dropped_by.tolist()
    with jsonl.atomic_file(curated, "wb") as keep, jsonl.atomic_file(rejected, "wb") as drop:
        for i, (_, _, line) in enumerate(jsonl.lines(rollouts)):
            if i >= len(who):
                raise RuntimeError(f"{rollouts} grew while it was being curated; run `rollgen curate` when it is complete")
            if who[i] < 0:
                keep.write(line + b"\n")
                continue
            label, detail = reasons[i]
            head = (f'{{"filter": {json.dumps(names[who[i]])}, "reason": {json.dumps(label, ensure_ascii=False)}, '
                    f'"detail": {json.dumps(detail, ensure_ascii=False)}, "rollout": ')
            drop.write(head.encode("utf-8") + line + b"}\n")
