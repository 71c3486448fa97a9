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
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rollgen import jsonl
from rollgen.config import QualityConfig
from rollgen.quality import decontam, dedup, groupfilters, rowfilters  # noqa: F401 - they register their filters
from rollgen.quality.registry import Filter, GroupFilter, Inputs, RowFilter, Verdicts, make
from rollgen.quality.view import Reason, Rows, RowView

__all__ = ["build", "run_chain"]

BATCH = 256  # rows parsed and hashed together (a few MB of text features)


class Reasons:
    """Why each dropped row was dropped, compactly: a code per row into a table of distinct ``(label, detail)``
    pairs (most details repeat: "reward 0", an error message), not a tuple and a dict entry per row."""

    def __init__(self) -> None:
        self._table: list[Reason] = []
        self._code_of: dict[Reason, int] = {}
        self._codes = array("i")  # per row: its reason's code, or -1

    def set(self, i: int, reason: Reason) -> None:
        code = self._code(reason)
        if i >= len(self._codes):
            self._codes.extend([-1] * (i + 1 - len(self._codes)))
        self._codes[i] = code

    def set_many(self, rows: np.ndarray, which: np.ndarray, table: list[Reason]) -> None:
        """``set`` for many rows at once: row ``rows[k]`` gets reason ``table[which[k]]``."""
        if not len(rows):
            return
        codes = np.array([self._code(r) for r in table], dtype=np.int32)
        top = int(rows.max()) + 1
        if top > len(self._codes):
            self._codes.extend([-1] * (top - len(self._codes)))
        np.frombuffer(self._codes, dtype=np.int32)[rows] = codes[which]

    def _code(self, reason: Reason) -> int:
        code = self._code_of.get(reason)
        if code is None:
            code = self._code_of[reason] = len(self._table)
            self._table.append(reason)
        return code

    def code(self, i: int) -> int:
        """Row ``i``'s reason as its number in the table (equal reasons, equal codes)."""
        return self._codes[i]

    def label(self, i: int) -> str:
        return self._table[self._codes[i]][0]

    def __getitem__(self, i: int) -> Reason:
        return self._table[self._codes[i]]


def build(cfg: QualityConfig, task_meta: dict[str, dict[str, Any]],
          answers: dict[str, int] | None = None) -> list[tuple[str, Filter]]:
    """``(name, filter)`` in chain order, each from the filter registry; ``answers`` (task id ->
    ``text.answer_key``) keeps dedup from merging tasks whose gold answers differ."""
    inputs = Inputs(task_meta=task_meta, answers=answers)
    return [(name, make(name, cfg, inputs)) for name in cfg.chain]


def _batches(path: Path, size: int = BATCH, lines: Iterable[jsonl.Line] | None = None
             ) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    """Parsed rows, ``size`` at a time, with the byte offset of each row's line (rows numbered as in ``_write``).
    ``lines``: the file's lines from elsewhere (``jsonl.follow`` while it is written); by default read from it."""
    batch, offsets = [], []
    for line in jsonl.lines(path) if lines is None else lines:
        batch.append(jsonl.parse(path, line))
        offsets.append(line.offset)
        if len(batch) == size:
            yield batch, offsets
            batch, offsets = [], []
    if batch:
        yield batch, offsets


def run_chain(chain: list[tuple[str, Filter]], rollouts: Path, curated: Path, rejected: Path,
              observers: list[Callable[[list[RowView]], None]], lines: Iterable[jsonl.Line] | None = None,
              after_first_pass: Callable[[Rows], None] | None = None) -> tuple[Rows, np.ndarray, list[dict[str, Any]]]:
    """Filter ``rollouts`` into ``curated`` / ``rejected``; return the rows, who dropped each (-1: kept), the funnel.

    ``observers`` see every batch of rows in pass 1 (metrics), whatever the filters say. ``lines``: pass 1's
    lines of ``rollouts`` as they come (``jsonl.follow``), when it reads them while they are written;
    ``after_first_pass(rows)`` is called when that pass has ended, before any decision (it may raise to stop there).
    """
    rows = Rows(rollouts)
    steps: list[tuple[int, bool, Callable[[RowView], Any]]] = []  # (position, is a row filter, the call)
    for pos, (_, f) in enumerate(chain):
        if isinstance(f, RowFilter):
            steps.append((pos, True, f.check))
        elif isinstance(f, GroupFilter) and f.observes:  # the other group filters wait for pass 1 to end
            steps.append((pos, False, f.observe))
    reasons = Reasons()
    fail_pos = array("h")  # per row: the chain position of the row filter that dropped it in pass 1, or -1
    for batch, offsets in _batches(rollouts, lines=lines):
        views = rows.add(batch, offsets)
        for observe in observers:
            observe(views)
        for view in views:
            fail_pos.append(-1)
            for pos, is_row, step in steps:
                if not is_row:
                    step(view)
                elif (reason := step(view)) is not None:
                    fail_pos[view.index] = pos
                    reasons.set(view.index, reason)
                    break
    rows.freeze()
    if after_first_pass is not None:
        after_first_pass(rows)

    dropped_by = np.full(len(rows), -1, dtype=np.int16)
    first_fail = np.frombuffer(fail_pos, dtype=np.int16) if len(fail_pos) else np.zeros(0, np.int16)
    funnel = []
    alive = len(rows)
    try:
        for pos, (name, f) in enumerate(chain):
            if isinstance(f, GroupFilter):
                drops = Verdicts.of(f.decide(np.flatnonzero(dropped_by < 0), rows) if alive else {})
                reasons.set_many(drops.rows, drops.which, drops.reasons)
                labels = drops.labels()
                dropped = drops.rows
            else:
                dropped = np.flatnonzero((first_fail == pos) & (dropped_by < 0))
                labels = Counter(reasons.label(i) for i in dropped.tolist())
            dropped_by[dropped] = pos
            step = {"filter": name, "in": alive, "out": alive - len(dropped), "dropped": len(dropped),
                    "reasons": dict(labels.most_common())}
            if isinstance(f, GroupFilter) and f.notes:  # what it saw but did not drop (e.g. kept apart by dedup)
                step["notes"] = dict(f.notes)
            funnel.append(step)
            alive -= len(dropped)
    finally:
        rows.close()

    _write(rollouts, curated, rejected, dropped_by, reasons, [name for name, _ in chain])
    return rows, dropped_by, funnel


def _write(rollouts: Path, curated: Path, rejected: Path, dropped_by: np.ndarray, reasons: Reasons,
           names: list[str]) -> None:
    """Pass 2: each raw line to curated, or wrapped to rejected; both written to temp files, then renamed."""
    who = dropped_by.tolist()
    heads: dict[tuple[int, int], bytes] = {}  # (filter, reason code) -> the wrapper's head: most rows share a few
    with jsonl.atomic_file(curated, "wb") as keep, jsonl.atomic_file(rejected, "wb") as drop:
        for i, (_, _, line) in enumerate(jsonl.lines(rollouts)):
            if i >= len(who):
                raise RuntimeError(f"{rollouts} grew while it was being curated; run `rollgen curate` when it is complete")
            if who[i] < 0:
                keep.write(line + b"\n")
                continue
            key = (who[i], reasons.code(i))
            head = heads.get(key)
            if head is None:
                label, detail = reasons[i]
                head = (f'{{"filter": {json.dumps(names[who[i]])}, "reason": {json.dumps(label, ensure_ascii=False)}, '
                        f'"detail": {json.dumps(detail, ensure_ascii=False)}, "rollout": ').encode("utf-8")
                if len(heads) < 65_536:
                    heads[key] = head
            drop.write(head + line + b"}\n")
