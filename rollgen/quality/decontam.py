"""Decontamination: drop tasks whose prompt shares a word n-gram with a row of an evaluation file.

The evaluation files are task files in any format ``rollgen.servers.taskrows.read_tasks`` reads.
Their n-grams (default 13 words, as in the GPT-3 / Llama reports) go into one sorted array; a task's
prompt is checked once. A benchmark row shorter than ``n`` words matches when a prompt contains all
of its words in order; rows under 5 words are too generic to check and are counted as such.
Which benchmark rows matched which tasks goes into the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rollgen import config as c
from rollgen.quality.registry import FILTERS, RowFilter
from rollgen.quality.text import ngram_hashes, words
from rollgen.quality.view import Reason, RowView, prompt_text

__all__ = ["Decontaminate"]

MIN_WORDS = 5
MAX_LISTED = 100  # matches listed in the report (all are counted)


@FILTERS.register("decontaminate")
class Decontaminate(RowFilter):
    def __init__(self, p: c.DecontaminateFilter):
        from rollgen.servers.taskrows import read_tasks

        self.n, self.field = p.ngram, p.field
        self.rows: list[tuple[str, str]] = []  # (file, row id) per benchmark row
        self.files: dict[str, dict[str, int]] = {}
        grams, owners = [], []
        self.short: dict[int, dict[int, int]] = {}  # length -> whole-row hash -> row
        for path in p.eval_files:
            stats = self.files[path] = {"rows": 0, "too_short": 0, "matched_rows": 0}
            for task in read_tasks(path):
                row = len(self.rows)
                self.rows.append((path, task.id))
                stats["rows"] += 1
                toks = words(prompt_text(task.chat()))
                if len(toks) >= self.n:
                    g = ngram_hashes(toks, self.n)
                    grams.append(g)
                    owners.append(np.full(len(g), row, dtype=np.int32))
                elif len(toks) >= MIN_WORDS:
                    self.short.setdefault(len(toks), {})[int(ngram_hashes(toks, len(toks))[0])] = row
                else:
                    stats["too_short"] += 1
        all_grams = np.concatenate(grams) if grams else np.zeros(0, dtype=np.uint64)
        order = np.argsort(all_grams, kind="stable")
        self.grams = all_grams[order]
        self.owners = (np.concatenate(owners) if owners else np.zeros(0, dtype=np.int32))[order]
        self.by_task: dict[int, Reason] = {}  # task code -> why its prompt is contaminated (only such tasks)
        self._checked = bytearray()  # by task code: 1 once its prompt was checked
        self.matches: dict[int, list[str]] = {}  # benchmark row -> task ids that overlap it

    def _match(self, toks: np.ndarray) -> int | None:
        """The first benchmark row sharing an n-gram with ``toks``, or None."""
        if len(self.grams):
            g = ngram_hashes(toks, self.n)
            if len(g):
                pos = np.minimum(np.searchsorted(self.grams, g), len(self.grams) - 1)
                hit = np.flatnonzero(self.grams[pos] == g)
                if len(hit):
                    return int(self.owners[pos[hit[0]]])
        for length, table in self.short.items():
            for h in ngram_hashes(toks, length).tolist():
                if h in table:
                    return table[h]
        return None

    def _reason(self, row: int, what: str, who: str) -> Reason:
        path, row_id = self.rows[row]
        self.matches.setdefault(row, []).append(who)
        return f"contaminated_{Path(path).stem}", f"{what} shares a {self.n}-gram with {path} row {row_id!r}"

    def check(self, v: RowView) -> Reason | None:
        if not self.rows:  # no evaluation file: nothing can match (and no state per task)
            return None
        if v.task >= len(self._checked):
            self._checked.extend(bytes(v.task + 1 - len(self._checked)))
        if not self._checked[v.task]:
            self._checked[v.task] = 1
            row = self._match(v.prompt_words)
            if row is not None:
                self.by_task[v.task] = self._reason(row, "prompt", str(v.row.get("task_id")))
        reason = self.by_task.get(v.task)
        if reason is None and self.field == "prompt_completion":
            row = self._match(v.completion_words)
            if row is not None:
                reason = self._reason(row, "completion", str(v.row.get("id")))
        return reason

    def summary(self) -> dict[str, Any]:
        """What matched, for the report: per file counts, then the matched benchmark rows."""
        files = {path: dict(stats) for path, stats in self.files.items()}
        for row in self.matches:
            files[self.rows[row][0]]["matched_rows"] += 1
        listed = [{"file": self.rows[row][0], "row": self.rows[row][1], "matched": who[:20], "n_matched": len(who)}
                  for row, who in sorted(self.matches.items())[:MAX_LISTED]]
        return {"ngram": self.n, "files": files, "matches": listed}
