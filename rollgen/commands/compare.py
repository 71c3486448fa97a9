"""``rollgen compare RUN_A RUN_B ...``: the same metrics side by side (markdown, or JSON with --json)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rollgen.metrics import run_metrics
from rollgen.sweep import table_md


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rollgen compare", description=__doc__.split(":", 1)[1].strip())
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (each with report.json)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = ap.parse_args(argv)
    rows = []
    for run in args.runs:
        if not (run / "report.json").is_file():
            print(f"rollgen compare: {run}: not a finished rollgen run (no report.json)", file=sys.stderr)
            return 2
        rows.append({"job": str(run), "overrides": {}, **run_metrics(run)})
    print(json.dumps(rows, indent=2) if args.json else table_md(rows, []))
    return 0
