"""``rollgen curate RUN_DIR [overrides...]``: re-run quality, then format and export, on a finished run.

    rollgen curate outputs/2026-11-25/15-40-12 quality.min_reward_threshold=0.9
    rollgen curate RUN_DIR quality=rl quality.filters.pass_rate.min=0.2
    rollgen curate RUN_DIR 'quality.chain=[status,reward,near_dedup]' quality.filters.near_dedup.threshold=0.7
    rollgen curate RUN_DIR quality.filters.decontaminate.eval_files=[aime24.jsonl,math500.jsonl]
    rollgen curate --from-nemo-gym rollouts.jsonl --out runs/gym sampler=dpo quality=dpo

--from-nemo-gym FILE reads a rollout file NeMo Gym wrote (`gym eval run`, `ng_collect_rollouts`: one line per
rollout with responses_create_params, response, reward and the verifier's fields; task fields are joined from
FILE's _materialized_inputs.jsonl when it is beside it) into a new run dir (--out, default
outputs/<date>/<time>): tasks.jsonl, rollouts.jsonl, run_config.json (server=remote) and nemo_gym_import.json,
then curates it like any run. A bad line stops it naming file:line (on_bad_row=skip: skipped and counted).

Reads RUN_DIR/rollouts.jsonl and makes no model or network call, so thresholds can be tuned in
seconds. Overrides are Hydra-style and apply to the run's saved config (run_config.json): a group
choice (quality=default|sft|dpo|rl, format=...) replaces that section, key=value edits one key. A
quality preset does not set min_reward_threshold (the run's sampler preset did), so the run's value is
kept unless you override it. Rewrites curated.jsonl, rejected.jsonl (every dropped rollout with its
filter, reason and detail), dataset/, export/, plots/, report.json and report.md, and saves the config
it used to run_config.json. Prints the funnel: rollouts in -> out per filter, in chain order.
Exit status: 0 done, 2 bad arguments, config or run dir.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "print_outcome", "recurate"]


def _config(run: Path, overrides: list[str]) -> Any:
    from rollgen.composer import rerun_config
    from rollgen.build import validate_run_config

    cfg = rerun_config(run, overrides)
    if any(o.lstrip("+~").startswith("quality.min_reward_threshold") for o in overrides):
        return cfg
    saved = json.loads((run / "run_config.json").read_text(encoding="utf-8")).get("quality", {})
    if "min_reward_threshold" not in saved or saved["min_reward_threshold"] == cfg.quality.min_reward_threshold:
        return cfg
    data = cfg.model_dump(mode="json", by_alias=True)
    data["quality"]["min_reward_threshold"] = saved["min_reward_threshold"]
    return validate_run_config(data)


def recurate(run_dir: str | Path, overrides: list[str] | None = None, *, collection: Any = None,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Quality → format → export → report on ``run_dir``'s rollouts with ``overrides``; returns the report.

    ``collection`` (a ``rollgen.results.Collection``: ``rollgen merge`` passes the shards' combined one) replaces
    the one read from the run's report.json, its counts taken from the rollouts; ``extra`` adds keys to the report.
    Raises ``ConfigError`` for a bad override or run dir, FileNotFoundError without rollouts, ``RunDirBusy``
    while another process (a run collecting into it) holds the run dir.
    """
    from rollgen.rundir import RunDir, RunDirLock

    rd = RunDir(run_dir)
    overrides = list(overrides or [])
    cfg = _config(rd.root, overrides)
    if not rd.rollouts.is_file():
        raise FileNotFoundError(f"{rd.root}: no rollouts.jsonl (collect first)")
    with RunDirLock(rd.root):  # not while a run collects into this directory
        return _recurate(rd, cfg, overrides, collection, extra or {})


def _recurate(rd: Any, cfg: Any, overrides: list[str], given: Any = None,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's collection as its report states it; quality, format, export and the report done again."""
    from rollgen import formats, quality
    from rollgen.formats.source import server_tools
    from rollgen.integrations import export_dataset
    from rollgen.jsonl import write_json
    from rollgen.plots import QUALITY_PLOTS
    from rollgen.report import build_report, write_plots, write_report
    from rollgen.results import REPORT_KEYS, Collection
    from rollgen.rundir import saved_config
    from rollgen.scan import scan_rollouts
    from rollgen.version import __version__

    t0 = time.perf_counter()
    scan = scan_rollouts(rd.rollouts, pass_threshold=formats.pass_threshold(cfg.format))
    try:
        old: dict[str, Any] = json.loads(rd.report_json.read_text(encoding="utf-8"))
        collection = Collection.from_report(old)
    except (OSError, ValueError):  # a run that never finished: its collection from the rollouts
        old = {}
        collection = Collection(status="complete", stats=scan.stats, present=frozenset({"rollouts_per_s"}))
    if given is not None:
        collection = given
        collection.stats = scan.stats
    collection.scan = scan
    curation = quality.curate(cfg.quality, rd.rollouts, rd.curated, rd.rejected, tasks=rd.tasks)
    tools, note = server_tools(cfg.server.model_dump(mode="json", by_alias=True))
    dataset = formats.make_dataset(cfg, rd, collection, tools, notes=(note,) if note else (), curation=curation)
    exports = export_dataset(cfg, rd, dataset)
    others = [p for p in old.get("plots", []) if Path(p).stem not in QUALITY_PLOTS]  # e.g. pass@k, not ours
    plots = write_plots(cfg, rd, curation, None) + others
    report = build_report(
        cfg, collection, curation=curation, dataset=dataset, exports=exports, plots=plots,
        wall_time_s=old.get("wall_time_s"), rollgen_version=old.get("rollgen_version", __version__),
        extra={**{k: v for k, v in old.items() if k not in REPORT_KEYS}, **(extra or {})},
        curated_with={"overrides": overrides, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                      "time_s": round(time.perf_counter() - t0, 3)})
    write_json(rd.config, saved_config(cfg))
    return write_report(rd, report)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rollgen curate", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("run_dir", nargs="?", help="a run directory (with run_config.json and rollouts.jsonl)")
    ap.add_argument("--from-nemo-gym", metavar="FILE", help="a NeMo Gym rollout file (JSONL) to import into a new run dir")
    ap.add_argument("--out", metavar="DIR", help="with --from-nemo-gym: the new run dir (default outputs/<date>/<time>)")
    ap.add_argument("overrides", nargs="*", help="Hydra-style overrides, e.g. quality=sft quality.min_reward_threshold=0.9")
    args = ap.parse_args(argv)
    if args.run_dir and "=" in args.run_dir:  # an override, not a run dir (argparse fills the optional first)
        args.overrides.insert(0, args.run_dir)
        args.run_dir = None
    if bool(args.from_nemo_gym) == bool(args.run_dir):
        ap.error("give a RUN_DIR or --from-nemo-gym FILE (one of them)")
    if args.out and not args.from_nemo_gym:
        ap.error("--out goes with --from-nemo-gym")

    from rollgen.errors import ConfigError, UserError

    try:
        if args.from_nemo_gym:
            from rollgen.nemogym.importer import describe, import_run

            args.run_dir = args.out or time.strftime("outputs/%Y-%m-%d/%H-%M-%S")
            print(f"rollgen curate: imported {describe(import_run(args.from_nemo_gym, args.run_dir, args.overrides))}")
        report = recurate(args.run_dir, args.overrides)
    except ConfigError as e:
        for line in e.lines:
            print(f"rollgen: config error: {line}", file=sys.stderr)
        return 2
    except (FileNotFoundError, UserError) as e:  # also: another process holds the run dir, a line that is not JSON
        print(f"rollgen curate: {e}", file=sys.stderr)
        return 2
    print_outcome("rollgen curate", report, Path(args.run_dir))
    return 0


def print_outcome(prog: str, report: dict[str, Any], run: Path) -> None:
    """The funnel, where the curated rows, dataset and report went (stdout), and why there is no data (stderr)."""
    from rollgen.quality import format_funnel

    print(format_funnel(report["funnel"], report["quality"]["rollouts"], str(run / "rejected.jsonl")))
    print(f"{report['kept']['curated']} curated -> {run / 'curated.jsonl'}; {report['kept']['dataset_rows']} "
          f"{report['format']} dataset rows -> {run / 'dataset'}; report: {run / 'report.md'}")
    for line in report["empty"]:
        print(f"{prog}: {line}", file=sys.stderr)
