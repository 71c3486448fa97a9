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
from rollgen.quality import decontam, dedup, groupfilters, rowfilters  # noqa: F401 - they register their filters
from rollgen.quality.registry import Filter, GroupFilter, Inputs, RowFilter, make
from rollgen.quality.view import Reason, Rows, RowView

__all__ = ["build", "run_chain"]

BATCH = 256  # rows parsed and hashed together (a few MB of text features)


def build(cfg: QualityConfig, task_meta: dict[str, dict[str, Any]],
          answers: dict[str, int] | None = None) -> list[tuple[str, Filter]]:
    """``(name, filter)`` in chain order, each from the filter registry; ``answers`` (task id ->
    ``text.answer_key``) keeps dedup from merging tasks whose gold answers differ."""
    inputs = Inputs(task_meta=task_meta, answers=answers)
    return [(name, make(name, cfg, inputs)) for name in cfg.chain]


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


def run_chain(chain: list[tuple[str, Filter]], rollouts: Path, curated: Path, rejected: Path,
              observers: list[Callable[[list[RowView]], None]]) -> tuple[Rows, np.ndarray, list[dict[str, Any]]]:
    """Filter ``rollouts`` into ``curated`` / ``rejected``; return the rows, who dropped each (-1: kept), the funnel.

    ``observers`` see every batch of rows in pass 1 (metrics), whatever the filters say.
    """
    rows = Rows(rollouts)
    steps: list[tuple[int, bool, Callable[[RowView], Any]]] = []  # (position, is a row filter, the call)
    for pos, (_, f) in enumerate(chain):
        if isinstance(f, RowFilter):
            steps.append((pos, True, f.check))
        elif isinstance(f, GroupFilter) and f.observes:  # the other group filters wait for pass 1 to end
            steps.append((pos, False, f.observe))
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
            if isinstance(f, GroupFilter):
                drops = f.decide(np.flatnonzero(dropped_by < 0), rows) if alive else {}
            else:
                drops = {i: first_fail[i][1] for i in fail_at.get(pos, []) if dropped_by[i] < 0}
            for i, reason in drops.items():
                dropped_by[i] = pos
                reasons[i] = reason
            labels = Counter(label for label, _ in drops.values())
            step = {"filter": name, "in": alive, "out": alive - len(drops), "dropped": len(drops),
                    "reasons": dict(labels.most_common())}
            if isinstance(f, GroupFilter) and f.notes:  # what it saw but did not drop (e.g. kept apart by dedup)
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
