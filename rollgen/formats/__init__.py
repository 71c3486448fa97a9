"""Format: curated rollouts → dataset rows (SFT, DPO, KTO or RL), split by prompt, with a dataset card.

``make_dataset`` is the format stage of a run (``build_dataset`` on what the run hands over, as a
``DatasetSummary``); ``build_dataset`` reads ``curated.jsonl`` by file offset (one task's rollouts in memory at a time),
writes every row once to a temp file, assigns whole groups of tasks with the same normalised prompt
(and the run's near-duplicate prompts) to train / validation / test (``split``), then streams the rows
into ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` (a split with no rows gets no file:
``datasets`` refuses empty splits), checks the written files for prompts in two splits
(``validate.split_overlap``), computes the statistics and writes ``README.md``, a dataset card with
provenance. The folder loads with ``datasets.load_dataset("json", data_dir=...)``.
"""

from __future__ import annotations

import json
import os
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from rollgen.config import DpoFormat, KtoFormat, NemoGymFormat, RlFormat, RunConfig, SftFormat
from rollgen.formats import nemo_gym as _nemo_gym  # noqa: F401  (registers format=nemo_gym)
from rollgen.formats.card import write_card
from rollgen.formats.rows import FORMATS, Context
from rollgen.formats.source import Reader, Source
from rollgen.formats.split import SPLITS, Groups, PromptGroups, prompt_of, split_groups, task_hash
from rollgen.formats.stats import dataset_stats
from rollgen.formats.validate import split_overlap
from rollgen.metrics import PASS_THRESHOLD
from rollgen.results import Collection, Curation, DatasetSummary
from rollgen.rundir import RunDir, saved_config

__all__ = ["Source", "build_dataset", "make_dataset", "pass_threshold", "write_dataset"]

AnyFormat = SftFormat | DpoFormat | KtoFormat | RlFormat | NemoGymFormat


def pass_threshold(cfg: AnyFormat) -> float:
    """The reward at which a rollout passes in the rows of ``cfg`` (RL's ``pass_threshold``; the default otherwise)."""
    return cfg.pass_threshold if isinstance(cfg, RlFormat) else PASS_THRESHOLD


def _kto_weights(desirable: int, undesirable: int) -> dict[str, float] | None:
    """TRL's KTO advice: desirable_weight * n_D / (undesirable_weight * n_U) within [1, 4/3]; aim at 1."""
    if not desirable or not undesirable:
        return None
    if desirable >= undesirable:
        return {"desirable_weight": 1.0, "undesirable_weight": round(desirable / undesirable, 4)}
    return {"desirable_weight": round(undesirable / desirable, 4), "undesirable_weight": 1.0}


def build_dataset(cfg: AnyFormat, source: Source | str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  seed: int) -> dict[str, Any]:
    """Write the dataset of ``cfg.kind`` from ``source`` (a ``Source`` or a run's ``curated.jsonl``) to ``out_dir``.

    Returns a summary: rows and tasks per split, what was left out and why, label balance (KTO), the
    statistics of the files written, and notes.
    """
    src = source if isinstance(source, Source) else Source.of_run(source, pass_threshold=pass_threshold(cfg))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_tmp = out / ".rows.jsonl.tmp"
    labels: Counter[bool] = Counter()
    label_hashes: dict[bool, array[int]] = {True: array("Q"), False: array("Q")}
    make = FORMATS[cfg.kind].rows
    with Reader(src) as reader, open(rows_tmp, "w", encoding="utf-8") as tmp:
        curated = len(reader.index)
        codes = reader.index.codes  # the one task-code table of this stage
        groups = PromptGroups(src.near_dedup, codes)
        ctx = Context(cfg, reader, seed)
        for task_id in reader.task_ids():
            code = codes.get(task_id)
            n = 0
            for row in make(ctx, task_id, reader.entries(task_id)):
                label = row.get("label") if cfg.kind == "kto" else None
                h = task_hash(str(row.get("rollout_id")), seed)
                if label is not None:
                    labels[label] += 1
                    if isinstance(cfg, KtoFormat) and cfg.balance:
                        label_hashes[label].append(h)
                tmp.write(json.dumps([code, label, h]) + "\t" + json.dumps(row, ensure_ascii=False) + "\n")
                if not n:
                    groups.add(task_id, prompt_of(row))
                n += 1
    task_groups = groups.groups()
    where = split_groups(task_groups.sizes, task_groups.key, cfg.validation_fraction, cfg.test_fraction, seed)
    split = where[np.maximum(task_groups.group_of, 0)]  # per task code: its split (an index into SPLITS)
    keep_below = _balance_cut(cfg, labels, label_hashes)
    rows, tasks, kept = _route(rows_tmp, out, split, keep_below)
    rows_tmp.unlink()
    if not cfg.test_fraction and not rows["test"]:
        del rows["test"], tasks["test"]

    summary: dict[str, Any] = {
        "format": cfg.kind,
        "rows": sum(rows.values()),
        "splits": rows,
        "tasks": tasks,
        "split_by": _split_by(task_groups, groups),
        "prompt_overlap": split_overlap(out),
        "dropped": dict(sorted(ctx.dropped.items())),
        "notes": list(src.notes) + _split_notes(cfg, tasks, task_groups),
    }
    if isinstance(cfg, KtoFormat):
        total = kept[True] + kept[False]
        summary["labels"] = {
            "desirable": kept[True], "undesirable": kept[False],
            "desirable_ratio": round(kept[True] / total, 6) if total else None,
            "balanced": cfg.balance, "dropped_to_balance": sum(labels.values()) - total,
            "suggested_trl_weights": _kto_weights(kept[True], kept[False]),
        }
    summary["stats"] = dataset_stats(out, cfg.kind)
    write_card(out, cfg, summary, src, seed, curated)
    return summary


def make_dataset(cfg: RunConfig, rd: RunDir, collection: Collection, tools: list[dict[str, Any]] | None,
                 notes: tuple[str, ...] = (), curation: Curation | None = None) -> DatasetSummary:
    """The format stage of a run: its curated rollouts into ``rd.dataset``, from what the run knows (its config,
    its server's ``tools``, the ``collection``'s pass over the rollouts); nothing is read back from the run dir
    but the curated rollouts, the tasks and the quality stage's rejected rows. Blocking file work: from a loop,
    run it in a thread. ``notes`` go on the dataset card (e.g. why the tools are unknown); ``curation``, the quality
    stage's result, gives the card its rows dropped per filter without reading rejected.jsonl again."""
    rejected = {f["filter"]: f["dropped"] for f in curation.funnel} if curation is not None else None
    source = Source.of_config(rd.curated, saved_config(cfg), tasks=rd.tasks, tools=tools, collection=collection.scan,
                              notes=notes, rejected=rejected)
    details = build_dataset(cfg.format, source, rd.dataset, cfg.seed)
    return DatasetSummary(format=cfg.format.kind, splits=dict(details["splits"]), rows=details["rows"], details=details)


def _split_by(task_groups: Groups, groups: PromptGroups) -> dict[str, Any]:
    """How tasks were grouped for the split: distinct prompts, groups, and tasks that share a group."""
    sizes = task_groups.sizes
    return {"key": "normalised prompt" + (" + near-duplicate prompts (near_dedup)" if groups.near else ""),
            "tasks": task_groups.tasks, "distinct_prompts": task_groups.distinct_prompts, "groups": len(task_groups),
            "tasks_sharing_a_group": int(sizes[sizes > 1].sum())}


def _split_notes(cfg: AnyFormat, tasks: dict[str, int], task_groups: Groups) -> list[str]:
    """Asked-for splits that got no task, and why."""
    return [f"{name} is empty: {task_groups.tasks} tasks form {len(task_groups)} prompt group(s), and a group is never "
            "split" for name, frac in (("validation", cfg.validation_fraction), ("test", cfg.test_fraction))
            if frac > 0 and not tasks.get(name)]


def write_dataset(cfg: AnyFormat, curated: Source | str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  seed: int) -> dict[str, int]:
    """``build_dataset``, returning only the rows per split (``train``, ``validation``, and ``test`` when asked)."""
    return build_dataset(cfg, curated, out_dir, seed)["splits"]


def _balance_cut(cfg: AnyFormat, labels: Counter[bool], hashes: dict[bool, array[int]]) -> dict[bool, int] | None:
    """For KTO ``balance``: per label, keep rows whose seeded hash is below this (the larger class shrinks)."""
    if not (isinstance(cfg, KtoFormat) and cfg.balance) or not labels[True] or not labels[False]:
        return None
    small = min(labels[True], labels[False])
    cut = {}
    for label in (True, False):
        hs = sorted(hashes[label])
        cut[label] = hs[small - 1] + 1 if len(hs) > small else 2**64
    return cut


def _route(rows_tmp: Path, out: Path, split: np.ndarray, cut: dict[bool, int] | None
           ) -> tuple[dict[str, int], dict[str, int], Counter[bool]]:
    """Stream the rows into their split files (temp names, renamed at the end); stale split files go. ``split``: per
    task code, an index into ``SPLITS``."""
    files: dict[str, Any] = {}
    rows = dict.fromkeys(SPLITS, 0)
    seen = np.zeros(len(split), dtype=bool)  # per task code: a row of it was written (a task is in one split)
    kept: Counter[bool] = Counter()  # KTO labels written
    try:
        with open(rows_tmp, encoding="utf-8") as f:
            for line in f:
                head, _, body = line.partition("\t")
                code, label, h = json.loads(head)
                if cut is not None and label is not None and h >= cut[label]:
                    continue
                name = SPLITS[split[code]]
                if name not in files:
                    files[name] = open(out / f"{name}.jsonl.tmp", "w", encoding="utf-8")  # noqa: SIM115
                files[name].write(body)
                rows[name] += 1
                seen[code] = True
                if label is not None:
                    kept[label] += 1
    finally:
        for fh in files.values():
            fh.close()
    for name in SPLITS:
        final = out / f"{name}.jsonl"
        if name in files:
            os.replace(out / f"{name}.jsonl.tmp", final)
        else:
            final.unlink(missing_ok=True)
    per_split = np.bincount(split[seen].astype(np.int64), minlength=len(SPLITS))
    return rows, {s: int(per_split[k]) for k, s in enumerate(SPLITS)}, kept
