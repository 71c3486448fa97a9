"""``rollgen dataset validate|stats|build``: check a dataset against a format, describe it, or rebuild it.

    rollgen dataset validate PATH [--format sft|dpo|kto|rl] [--min-margin 0.1]
    rollgen dataset stats PATH [--tokenizer FILE.gguf|HF_NAME|none] [--json]
    rollgen dataset build RUN_DIR [format=dpo format.strategy=all_pairs ...] [--out DIR]

PATH is a JSONL file, a folder of them (a run's ``dataset/``) or a run dir (its ``dataset/`` is used).
``validate`` prints one line per problem as ``file:line: message`` and exits 0 when the data passes, 1
when it does not, 2 on a usage error (no such path, a format it cannot tell from the keys).
``stats`` counts tokens with the run's local policy tokenizer when it can find one, else characters only.
``build`` re-runs the format stage on a finished run's curated rollouts, with overrides (no model calls).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _dataset_path(arg: str) -> Path | None:
    """The path to read: a run dir means its ``dataset/``. None (after saying why) when there is nothing."""
    path = Path(arg)
    if not path.exists():
        print(f"rollgen dataset: {path}: no such file or folder", file=sys.stderr)
        return None
    if path.is_dir() and (path / "run_config.json").is_file():  # a run dir, not a dataset folder
        if not (path / "dataset").is_dir():
            print(f"rollgen dataset: {path} is a run dir without dataset/ (the run stopped before the format "
                  "stage; see its report.md)", file=sys.stderr)
            return None
        print(f"note: reading {path / 'dataset'}", file=sys.stderr)
        return path / "dataset"
    return path


def _format_of(path: Path) -> str | None:
    """The format told from the first row's keys; None (after saying why, with the keys seen) if it cannot be."""
    from rollgen.formats.stats import data_files, detect_format, iter_rows

    for f, n, line in iter_rows(data_files(path)):
        try:
            row = json.loads(line)
        except ValueError:
            return "sft"  # any format: validate reports the bad line itself
        fmt = detect_format(row) if isinstance(row, dict) else None
        if fmt is None:
            keys = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
            print(f"rollgen dataset: {f}:{n}: cannot tell the format from the keys ({keys}); "
                  "pass --format sft|dpo|kto|rl", file=sys.stderr)
        return fmt
    return "sft"  # no rows: validate says so


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _validate(args: argparse.Namespace) -> int:
    from rollgen.formats.validate import validate

    path = _dataset_path(args.path)
    fmt = None if path is None else args.format if args.format != "auto" else _format_of(path)
    if path is None or fmt is None:
        return 2
    result = validate(path, fmt, args.min_margin)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for problem in result.errors[: args.max_errors]:
        print(problem)
    if len(result.errors) > args.max_errors:
        print(f"... and {len(result.errors) - args.max_errors} more problems")
    files = ", ".join(str(f) for f in result.files)
    if result.overlap is not None:
        o = result.overlap
        print(f"splits: {o['leaking_rows']} of {o['rows_checked']} rows have a prompt (or task) that is also in "
              f"another split" + (f" ({o['leaking_prompts']} distinct prompts)" if o["leaking_rows"] else ""))
    if result.ok:
        print(f"ok: {result.rows} {result.format} rows in {files}")
        return 0
    if result.errors:
        from rollgen.formats.stats import iter_rows

        bad_rows = len({(p.path, p.line) for p in result.errors})
        lines = sum(1 for _ in iter_rows(result.files))  # rows that are not JSON objects count too
        why = f"{_plural(len(result.errors), 'problem')} in {bad_rows} of {_plural(lines, 'row')}"
    else:
        why = "no rows"
    print(f"FAILED: {why} ({result.format} format) in {files}")
    return 1


def _fmt_dist(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"n {s['n']}  mean {s['mean']}  p50 {s['p50']}  p90 {s['p90']}  p99 {s['p99']}  max {s['max']}"


def _print_stats(st: dict[str, Any]) -> None:
    print(f"format {st['format']}: {st['rows']} rows" + (f", {st['tasks']} tasks" if st["tasks"] else ""))
    for name, f in st["files"].items():
        print(f"  {name}: {f['rows']} rows" + (f", {f['tasks']} tasks" if f["tasks"] else ""))
    if st["unreadable_lines"]:
        print(f"  {st['unreadable_lines']} lines unreadable (run `rollgen dataset validate`)")
    print("length (characters):")
    for name, s in st["length_chars"].items():
        print(f"  {name:<12} {_fmt_dist(s)}")
    if st["length_tokens"] is not None:
        print(f"length (tokens, {st['tokenizer']}):")
        for name, s in st["length_tokens"].items():
            print(f"  {name:<12} {_fmt_dist(s)}")
    if st["values"]:
        print("values:")
        for name, s in st["values"].items():
            print(f"  {name:<16} {_fmt_dist(s)}")
            if s and "histogram" in s:
                edges, counts = s["histogram"]["edges"], s["histogram"]["counts"]
                bins = [f"[{edges[i]:g},{edges[i + 1]:g}{']' if i == len(counts) - 1 else ')'}:{c}"
                        for i, c in enumerate(counts) if c]
                print("  " + " " * 16 + " ".join(bins))
    if st.get("chosen_to_rejected_length_ratio"):
        print(f"chosen/rejected length ratio: {_fmt_dist(st['chosen_to_rejected_length_ratio'])}")
    if st.get("labels"):
        lab = st["labels"]
        print(f"labels: desirable {lab['desirable']}, undesirable {lab['undesirable']}, ratio {lab['desirable_ratio']}")
    if st.get("groups"):
        g = st["groups"]
        print(f"groups: nonzero reward variance {g['nonzero_variance_share']}, all pass {g['all_pass']}, "
              f"all fail {g['all_fail']}")
    if st["rows_per_task"]:
        print(f"rows per task: {_fmt_dist(st['rows_per_task'])}")


def _stats(args: argparse.Namespace) -> int:
    from rollgen.formats.stats import dataset_stats
    from rollgen.formats.tokens import TokenizerUnavailable, load_counter, policy_tokenizer

    path = _dataset_path(args.path)
    if path is None:
        return 2
    spec = args.tokenizer if args.tokenizer != "auto" else policy_tokenizer(path)
    counter = None
    if spec and spec != "none":
        try:
            counter = load_counter(spec)
        except TokenizerUnavailable as e:
            if args.tokenizer != "auto":
                print(f"rollgen dataset: {e}", file=sys.stderr)
                return 2
            print(f"note: characters only ({e})", file=sys.stderr)
    st = dataset_stats(path, None if args.format == "auto" else args.format, counter, spec if counter else None)
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        _print_stats(st)
    return 0


def _build(args: argparse.Namespace) -> int:
    from rollgen.composer import rerun_config
    from rollgen.errors import ConfigError
    from rollgen.formats import build_dataset

    run = Path(args.run_dir)
    if not (run / "curated.jsonl").is_file():
        print(f"rollgen dataset: {run}: no curated.jsonl (run the collection and quality stages first)",
              file=sys.stderr)
        return 2
    try:
        cfg = rerun_config(run, args.overrides)
    except ConfigError as e:
        for line in e.lines:
            print(f"rollgen: config error: {line}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else run / "dataset"
    summary = build_dataset(cfg.format, run / "curated.jsonl", out, cfg.seed)
    print(f"{summary['rows']} {cfg.format.kind} rows -> {out} ("
          + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()) + ")")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rollgen dataset", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check a JSONL file or folder against a format")
    v.add_argument("path")
    v.add_argument("--format", default="auto", choices=["auto", "sft", "dpo", "kto", "rl"],
                   help="the format to check against (default: told from the first row's keys)")
    v.add_argument("--min-margin", type=float, default=None, help="DPO: every pair's margin must reach this")
    v.add_argument("--max-errors", type=int, default=100, help="problems printed at most (all are counted)")
    v.set_defaults(func=_validate)
    s = sub.add_parser("stats", help="counts, lengths, rewards, margins and labels of a dataset")
    s.add_argument("path")
    s.add_argument("--format", default="auto", choices=["auto", "sft", "dpo", "kto", "rl"])
    s.add_argument("--tokenizer", default="auto",
                   help="a .gguf file or a Hugging Face tokenizer to count tokens with; 'none' for characters "
                        "only; default: the run's local policy model when there is one")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_stats)
    b = sub.add_parser("build", help="re-run the format stage on a finished run, with overrides")
    b.add_argument("run_dir")
    b.add_argument("overrides", nargs="*", help="Hydra-style overrides, e.g. format=dpo format.strategy=all_pairs")
    b.add_argument("--out", default=None, help="output folder (default: RUN_DIR/dataset, replaced)")
    b.set_defaults(func=_build)
    args = ap.parse_args(argv)
    return int(args.func(args))
