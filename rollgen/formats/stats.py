"""Dataset statistics (frameworks.md D.7): counts, length percentiles, rewards, margins, label balance.

Streams the rows; per row it keeps a few numbers in compact arrays, so a million rows cost megabytes.
Lengths are characters of what a reader sees (message contents and tool calls), and tokens too when a
counting function is given (``tokenizers.load_counter``).
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rollgen import jsonl
from rollgen.formats.messages import prompt_len, text_of
from rollgen.formats.rows import FORMATS
from rollgen.taskcodes import TaskCodes

__all__ = ["data_files", "dataset_stats", "detect_format", "iter_rows", "summarize"]

SPLIT_ORDER = ("train", "validation", "test")


def detect_format(row: dict[str, Any]) -> str | None:
    """The format a row looks like, from its keys (TRL's dataset types)."""
    if "responses_create_params" in row:
        return "nemo_gym"
    if "chosen" in row and "rejected" in row:
        return "dpo"
    if "label" in row and "completion" in row:
        return "kto"
    if "messages" in row or "text" in row or ("prompt" in row and "completion" in row):
        return "sft"
    if "prompt" in row:
        return "rl"
    return None


def data_files(path: str | os.PathLike[str]) -> list[Path]:
    """A file, or a directory's ``*.jsonl`` files (train, validation, test first)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.jsonl"), key=lambda f: (SPLIT_ORDER.index(f.stem) if f.stem in SPLIT_ORDER else 9,
                                                          f.name))
        return files
    return [p]


def iter_rows(files: list[Path]) -> Iterator[tuple[Path, int, str]]:
    """(file, line number, line) of every non-blank line."""
    for f in files:
        for line in jsonl.lines(f):
            yield f, line.number, line.raw.decode("utf-8", errors="replace")


def _parts(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The text fields of a row, with an SFT ``messages`` list cut into prompt and completion."""
    if fmt == "sft" and isinstance(row.get("messages"), list):
        cut = prompt_len(row["messages"])
        return {"prompt": row["messages"][:cut], "completion": row["messages"][cut:]}
    if fmt == "sft" and "text" in row:
        return {"completion": row["text"]}
    if fmt == "nemo_gym" and isinstance(row.get("responses_create_params"), dict):
        given = row["responses_create_params"].get("input")
        return {"prompt": given if isinstance(given, (str, list)) else None}
    return row


def summarize(values: array[Any] | list[float], histogram: bool = False) -> dict[str, Any] | None:
    """n, mean, std, min, p50, p90, p99, max (and a 10-bin histogram) of ``values``; None when empty."""
    if not len(values):
        return None
    a = np.asarray(values, dtype=float)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    out: dict[str, Any] = {"n": int(a.size), "mean": round(float(a.mean()), 4), "std": round(float(a.std()), 4),
                           "min": round(float(a.min()), 4), "p50": round(float(p50), 4),
                           "p90": round(float(p90), 4), "p99": round(float(p99), 4), "max": round(float(a.max()), 4)}
    if histogram:
        lo, hi = min(0.0, float(a.min())), max(1.0, float(a.max()))
        counts, edges = np.histogram(a, bins=10, range=(lo, hi))
        out["histogram"] = {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}
    return out


def dataset_stats(path: str | os.PathLike[str], fmt: str | None = None,
                  count_tokens: Callable[[str], int] | None = None, tokenizer_name: str | None = None
                  ) -> dict[str, Any]:
    """Statistics of a dataset file or folder (format detected from the first row when ``fmt`` is None)."""
    files = data_files(path)
    per_file: dict[str, dict[str, Any]] = {}
    chars: dict[str, array[int]] = {}
    tokens: dict[str, array[int]] = {}
    numbers: dict[str, array[float]] = {}
    ratio: array[float] = array("d")
    labels: Counter[bool] = Counter()
    task_codes = TaskCodes()  # task ids by code; per code: rows, and the last file that had one (tasks per file)
    rows_per_task, last_file = array("q"), array("i")
    unreadable = 0
    for f, _, line in iter_rows(files):
        info = per_file.setdefault(f.name, {"rows": 0, "tasks": 0, "index": len(per_file)})
        try:
            row = jsonl.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if not isinstance(row, dict):
            unreadable += 1
            continue
        fmt = fmt or detect_format(row)
        if fmt is None:
            unreadable += 1
            continue
        info["rows"] += 1
        if "task_id" in row:
            code = task_codes.code(str(row["task_id"]))
            if code == len(rows_per_task):
                rows_per_task.append(0)
                last_file.append(-1)
            rows_per_task[code] += 1
            if last_file[code] != info["index"]:  # files are read one after another
                last_file[code] = info["index"]
                info["tasks"] += 1
        text_fields, number_fields = FORMATS[fmt].text_fields, FORMATS[fmt].number_fields
        parts = _parts(row, fmt)
        lengths = {}
        for name in text_fields:
            if name in parts and parts[name] is not None:
                text = text_of(parts[name])
                lengths[name] = len(text)
                chars.setdefault(name, array("l")).append(len(text))
                if count_tokens is not None:
                    tokens.setdefault(name, array("l")).append(count_tokens(text))
        for name in number_fields:
            v = row.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                numbers.setdefault(name, array("d")).append(float(v))
        if fmt == "dpo" and "margin" not in row and isinstance(row.get("chosen_reward"), (int, float)) \
                and isinstance(row.get("rejected_reward"), (int, float)):
            numbers.setdefault("margin", array("d")).append(row["chosen_reward"] - row["rejected_reward"])
        if fmt == "dpo" and lengths.get("rejected"):
            ratio.append(lengths.get("chosen", 0) / lengths["rejected"])
        if fmt == "kto" and isinstance(row.get("label"), bool):
            labels[row["label"]] += 1

    out: dict[str, Any] = {
        "format": fmt if files else None,
        "rows": sum(i["rows"] for i in per_file.values()),
        "tasks": len(rows_per_task) or None,
        "files": {name: {"rows": i["rows"], "tasks": i["tasks"] or None} for name, i in per_file.items()},
        "unreadable_lines": unreadable,
        "length_chars": {k: summarize(v) for k, v in chars.items()},
        "length_tokens": {k: summarize(v) for k, v in tokens.items()} if count_tokens is not None else None,
        "tokenizer": tokenizer_name if count_tokens is not None else None,
        "values": {k: summarize(v, histogram=True) for k, v in numbers.items()},
        "rows_per_task": summarize(rows_per_task) if rows_per_task else None,
    }
    if fmt == "dpo":
        out["chosen_to_rejected_length_ratio"] = summarize(ratio, histogram=False)
    if fmt == "kto":
        total = labels[True] + labels[False]
        out["labels"] = {"desirable": labels[True], "undesirable": labels[False],
                         "desirable_ratio": round(labels[True] / total, 6) if total else None}
    if fmt == "rl" and "reward_variance" in numbers:
        var, pr = numbers["reward_variance"], numbers.get("pass_rate", array("d"))
        out["groups"] = {"nonzero_variance_share": round(sum(v > 0 for v in var) / len(var), 6),
                         "all_pass": sum(p >= 1.0 for p in pr), "all_fail": sum(p <= 0.0 for p in pr)}
    return out
