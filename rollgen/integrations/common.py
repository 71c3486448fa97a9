"""What the framework integrations share: reading a dataset's splits, writing JSONL/Parquet, launch scripts.

A rollgen dataset folder holds ``train.jsonl``, ``validation.jsonl`` and maybe ``test.jsonl`` of one format
(sft, dpo, kto or rl; ``rollgen/formats/rows.py``). Each integration maps every row to its framework's
schema (``convert``) and writes one file per split under ``<algorithm>/``, then a ``train.sh`` and a
``manifest.json`` that says what was written, how to load it, and what was left out and why.
"""

from __future__ import annotations

import json
import shlex
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollgen.jsonl import atomic_file, read_jsonl

__all__ = ["BATCH_FUNCTIONS", "SPLITS", "Export", "micro_and_global_batch", "split_files", "user_text", "write_parquet"]

SPLITS = ("train", "validation", "test")
Row = dict[str, Any]

# Bash helpers every train.sh defines before it derives its batch sizes (integer arithmetic only; the
# training node needs nothing but bash). ``fit ROWS CAP STEP``: the largest multiple of STEP that is at most
# min(ROWS, CAP), and STEP when ROWS < STEP; ``divisor N CAP``: the largest divisor of N that is at most CAP;
# ``small COUNT BATCH WHAT NAME EFFECT``: a warning on stderr when COUNT (of WHAT) is less than one batch;
# ``need_int VAR``: exit 2 unless $VAR is a positive integer.
BATCH_FUNCTIONS = r"""need_int() {
  [[ "${!1}" =~ ^[1-9][0-9]*$ ]] || { echo "train.sh: $1 must be a positive integer (got '${!1}')" >&2; exit 2; }
}
fit() { local n=$(( $1 < $2 ? $1 : $2 )); n=$(( n / $3 * $3 )); echo $(( n > 0 ? n : $3 )); }
divisor() {
  local d=$(( $1 < $2 ? $1 : $2 )); d=$(( d > 0 ? d : 1 ))
  while (( $1 % d )); do d=$(( d - 1 )); done; echo "$d"
}
gcd() { local a=$1 b=$2 t; while (( b )); do t=$(( a % b )); a=$b; b=$t; done; echo "$a"; }
small() {
  (( $1 >= $2 )) || echo "train.sh: warning: $3: $1, fewer than one batch ($4=$2 with NGPUS=$NGPUS); $5." \
    "Export more rows, use fewer GPUs, or set BATCH_SIZE (README: Training integration)." >&2
}"""


def micro_and_global_batch(rows: int, micro: int, cap: int, name: str) -> list[str]:
    """Bash lines (after BATCH_FUNCTIONS) for a data-parallel trainer: MICRO_BATCH_SIZE per GPU (the framework's
    ``micro``, fewer when ``rows`` cannot give every GPU that many) and BATCH_SIZE, the global batch ``name``: a
    multiple of MICRO_BATCH_SIZE x NGPUS (whole micro-batches on every GPU), at most ``cap`` and ``rows``. Both
    keep a value the caller's environment sets; a train split smaller than one batch gets a warning."""
    return ["need_int NGPUS", f"# micro-batch per GPU: {micro} (the framework's), fewer when the {rows} train rows "
            "cannot give every GPU that many", f"PER_GPU=$(( {rows} / NGPUS ))",
            f'MICRO_BATCH_SIZE="${{MICRO_BATCH_SIZE:-$(( PER_GPU < 1 ? 1 : (PER_GPU > {micro} ? {micro} : PER_GPU) ))}}"',
            "need_int MICRO_BATCH_SIZE",
            f"# global batch: a multiple of MICRO_BATCH_SIZE x NGPUS, at most {cap} (the framework's) and the train rows",
            f'BATCH_SIZE="${{BATCH_SIZE:-$(fit {rows} {cap} $(( MICRO_BATCH_SIZE * NGPUS )))}}"', "need_int BATCH_SIZE",
            f'small {rows} "$BATCH_SIZE" "train rows" {name} "the dataloader drops the last incomplete batch, so no '
            'step would run"']


def split_files(dataset_dir: Path) -> dict[str, Path]:
    """The split files present in ``dataset_dir``, in split order."""
    return {s: dataset_dir / f"{s}.jsonl" for s in SPLITS if (dataset_dir / f"{s}.jsonl").is_file()}


def write_parquet(path: Path, rows: list[Row]) -> int:
    """Rows as one Parquet file, written atomically (pyarrow infers the nested struct/list schema; columns must
    agree across rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    with atomic_file(path, "wb") as f:
        pq.write_table(table, f)
    return len(rows)


def user_text(messages: list[dict[str, Any]]) -> str:
    """The content of the last user turn (the problem statement of a single-turn prompt)."""
    for m in reversed(messages):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


class Export:
    """One framework's export folder: data files, launch script, config snippets, manifest."""

    def __init__(self, out_dir: Path, framework: str, fmt: str, version_matched: str):
        self.out = out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        _remove_previous(self.out)
        self.manifest: dict[str, Any] = {"framework": framework, "format": fmt, "matched": version_matched,
                                         "files": {}, "algorithms": [], "skipped": [], "notes": []}

    def write_splits(self, dataset_dir: Path, sub: str, convert: Callable[[Row, str, int], Row | None],
                     writer: Callable[[Path, list[Row]], int], suffix: str) -> dict[str, Path]:
        """Convert every split of ``dataset_dir`` into ``<sub>/<split><suffix>``; returns the files written.

        ``convert(row, split, index)`` returns the framework's row, or None to leave the row out (counted
        in the manifest's ``skipped`` with the reason given by ``self.skip``).
        """
        written: dict[str, Path] = {}
        for split, src in split_files(dataset_dir).items():
            rows = [out for i, row in enumerate(read_jsonl(src)) if (out := convert(row, split, i)) is not None]
            if not rows:
                continue
            dest = self.out / sub / f"{split}{suffix}"
            self.manifest["files"][str(dest.relative_to(self.out))] = writer(dest, rows)
            written[split] = dest
        return written

    def rows(self, path: Path) -> int:
        """How many rows ``write_splits`` wrote to ``path``."""
        return int(self.manifest["files"][str(path.relative_to(self.out))])

    def skip(self, reason: str) -> None:
        for entry in self.manifest["skipped"]:
            if entry["reason"] == reason:
                entry["rows"] += 1
                return
        self.manifest["skipped"].append({"reason": reason, "rows": 1})

    def write_text(self, name: str, text: str, executable: bool = False) -> Path:
        path = self.out / name
        path.write_text(text, encoding="utf-8")
        if executable:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.manifest["files"].setdefault(name, None)
        return path

    def write_script(self, header: str, commands: list[list[str]], env: dict[str, str], setup: str = "") -> Path:
        """``train.sh``: bash, ``HERE`` = the export folder, ``env`` defaults overridable from the caller's
        environment, then ``setup`` (bash run before the commands: batch sizes), each command's arguments
        one per line, and ``"$@"`` appended to the last command."""
        lines = ["#!/usr/bin/env bash", *[f"# {h}" if h else "#" for h in header.splitlines()],
                 "set -euo pipefail", 'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"']
        lines += [f'{k}="${{{k}:-{v}}}"' for k, v in env.items()]
        if setup:
            lines.append(setup.rstrip("\n"))
        for n, cmd in enumerate(commands):
            words = [_sh(a) for a in cmd] + (['"$@"'] if n == len(commands) - 1 else [])
            lines.append(" \\\n  ".join(_group(words)))
        return self.write_text("train.sh", "\n".join(lines) + "\n", executable=True)

    def finish(self) -> dict[str, Any]:
        with atomic_file(self.out / "manifest.json") as f:
            f.write(json.dumps(self.manifest, indent=2) + "\n")
        return self.manifest


def _remove_previous(out: Path) -> None:
    """Delete the files an earlier export listed in its manifest (a re-export of another format must not leave
    stale splits behind); anything else in the folder (checkpoints, resolved configs) stays."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return
    try:
        names = list(json.loads(manifest.read_text(encoding="utf-8")).get("files", {}))
    except (ValueError, AttributeError):
        return
    for name in names:
        path = (out / name).resolve()
        if path.is_file() and out.resolve() in path.parents:
            path.unlink()
            if path.parent != out.resolve() and not any(path.parent.iterdir()):
                path.parent.rmdir()
    manifest.unlink()


def _group(words: list[str]) -> list[str]:
    """One line per option: a new line at each ``--flag`` or ``key=value`` word (the program stays on line 1)."""
    lines: list[list[str]] = []
    for w in words:
        bare = w.strip("'\"")
        if lines and (bare.startswith("--") or ("=" in bare and not bare.startswith("-")) or w == '"$@"'):
            lines.append([w])
        elif lines:
            lines[-1].append(w)
        else:
            lines.append([w])
    return [" ".join(line) for line in lines]


def _sh(arg: str) -> str:
    """Quote a shell word, leaving ``$HERE``/``$VAR`` references expandable (double quotes)."""
    if "$" in arg:
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'
    return shlex.quote(arg)
