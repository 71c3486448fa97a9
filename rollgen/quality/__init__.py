"""Quality: filter, curate and balance rollouts into ``curated.jsonl``; nothing is lost.

``quality.chain`` lists the filters in order (``status``, ``reward``, ``length``, ``repetition``,
``refusal``, ``answer_format``, ``decontaminate``, ``exact_dedup``, ``near_dedup``, ``pass_rate``,
``zero_variance``, ``cap_per_task``, ``stratify``, ``kto_balance``); ``quality.filters.<name>`` holds
each one's parameters (``rollgen/config.py`` documents them). Every dropped rollout goes to
``rejected.jsonl`` with the filter, a reason and a detail; the funnel (rows in and out per filter, in
order, with the reasons counted) goes to the report and the terminal, with quality metrics (the report
stage draws the plots from them).

Two streaming passes (``chain.py``): 100,000 rollouts of a few hundred words take well under a minute
and a few hundred MB (``bench/quality.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rollgen.config import QualityConfig
from rollgen.jsonl import Line
from rollgen.quality.chain import build, run_chain
from rollgen.quality.metrics import BREAKDOWN, Metrics
from rollgen.quality.view import Rows, RowView
from rollgen.results import Curation
from rollgen.taskcodes import TaskFile

__all__ = ["Curation", "curate", "format_funnel"]


def _read_tasks(tasks: os.PathLike[str] | None, keys: set[str], answers: bool
                ) -> tuple[Mapping[str, dict[str, Any]], Mapping[str, int]]:
    """From the run's tasks.jsonl, read once into columns by task code (``TaskFile``): task id -> the metadata values
    under ``keys`` (top-level key names; tasks with none of them are absent), and (when ``answers``) task id -> the key
    of its gold answer (``text.answer_key``; tasks without one absent)."""
    if tasks is None or not Path(tasks).is_file() or not (keys or answers):
        table = TaskFile()
    else:
        table = TaskFile(tasks, keys=keys, answers=answers)
    return table.metadata_map(), table.answer_map()


def curate(cfg: QualityConfig, rollouts: os.PathLike[str], curated: os.PathLike[str], rejected: os.PathLike[str],
           *, tasks: os.PathLike[str] | None = None, lines: Iterable[Line] | None = None,
           observers: list[Callable[[list[RowView]], None]] | None = None,
           after_first_pass: Callable[[Rows], None] | None = None) -> Curation:
    """The quality stage: filter ``rollouts`` into ``curated`` and ``rejected``, and measure both.

    ``tasks`` (the run's tasks.jsonl) gives the task metadata that ``stratify`` and the per-difficulty
    metrics read (without it every task is in the ``missing`` stratum), and the gold answers that keep
    deduplication from merging different problems. Blocking file work: from a loop, run it in a thread.
    The report stage draws the plots (``rollgen.plots.write_plots``) from the result. ``lines``: the first
    pass's lines, when they come from elsewhere (``jsonl.follow`` while collection writes the file);
    ``observers`` see every batch of rows of that pass too (``scan.Scanner.observe``), and
    ``after_first_pass(rows)`` is called when it has ended (``rows``: the pass's columns and task codes), before any
    decision or file is written.
    """
    keys = set(BREAKDOWN) | ({cfg.filters.stratify.by.split(".")[0]} if "stratify" in cfg.chain else set())
    task_meta, answers = _read_tasks(tasks, keys, answers=bool({"exact_dedup", "near_dedup"} & set(cfg.chain)))
    chain = build(cfg, task_meta, answers)
    metrics = Metrics(task_meta)
    rows, dropped_by, funnel = run_chain(chain, Path(rollouts), Path(curated), Path(rejected),
                                       [metrics.observe, *(observers or [])], lines, after_first_pass)
    summary = metrics.finish(rows, dropped_by < 0)
    contamination = next((f.summary() for name, f in chain if name == "decontaminate"), None)
    return Curation(total=len(rows), curated=int((dropped_by < 0).sum()), funnel=funnel, metrics=summary,
                    contamination=contamination, lengths=metrics.length_histogram())


def format_funnel(funnel: list[dict[str, Any]], total: int, rejected_path: str = "rejected.jsonl") -> str:
    """The funnel as a small text table for the terminal: rows in -> out per filter, the main reasons."""
    curated = funnel[-1]["out"] if funnel else total
    lines = [f"quality: {total} rollouts -> {curated} curated, {total - curated} rejected ({rejected_path})"]
    width = max([len(f["filter"]) for f in funnel] + [6])
    for f in funnel:
        why = ", ".join(f"{label} {n}" for label, n in list(f["reasons"].items())[:3])
        lines.append(f"  {f['filter']:<{width}} {f['in']:>8} -> {f['out']:<8} -{f['dropped']:<7} {why}".rstrip())
        lines += [f"  {'':<{width}} {'':>8}    ({note}: {n})" for note, n in f.get("notes", {}).items()]
    return "\n".join(lines)
