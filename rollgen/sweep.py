"""Sweep summaries: at the end of ``python -m rollgen -m ...``, one row per job and the plots that compare them.

Registered as a Hydra callback in ``conf/config.yaml`` (``hydra.callbacks.sweep_summary``). Writes
``sweep_summary.{csv,md,json}`` and ``plots/*.png`` into the sweep dir (``multirun/<date>/<time>/``),
and names the best job for ``objective``. ``rollgen compare`` prints the same table for any runs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rollgen.metrics import run_metrics
from rollgen.sweep_plots import write_sweep_plots

__all__ = ["SweepSummary", "summarize", "table_md"]

log = logging.getLogger("rollgen")

def _overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    import yaml

    items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return dict(item.lstrip("+").split("=", 1) for item in items if "=" in item)


def _jobs(sweep_dir: Path) -> list[Path]:
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / "report.json").is_file()]
    return sorted(jobs, key=lambda p: (len(p.name), p.name))


def summarize(sweep_dir: str | Path, objective: str = "mean_reward", maximize: bool = True) -> dict[str, Any]:
    """Collect every job's metrics; write the summary files and plots; return the summary."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for job in _jobs(sweep_dir):
        rows.append({"job": job.name, "overrides": _overrides(job), **run_metrics(job)})
    swept = sorted({k for r in rows for k in r["overrides"]
                    if len({str(x["overrides"].get(k)) for x in rows}) > 1})
    best = None
    scored = [r for r in rows if isinstance(r.get(objective), (int, float))]
    if scored:
        best = (max if maximize else min)(scored, key=lambda r: r[objective])["job"]
    summary = {"sweep_dir": str(sweep_dir), "objective": objective, "maximize": maximize, "best_job": best,
               "swept": swept, "jobs": rows}
    (sweep_dir / "sweep_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (sweep_dir / "sweep_summary.csv").write_text(_csv(rows, swept), encoding="utf-8")
    plots = write_sweep_plots(rows, sweep_dir / "plots")
    md = [f"# Sweep `{sweep_dir}`", "", table_md(rows, swept), ""]
    if best is not None:
        md += [f"Best job for `{objective}` ({'max' if maximize else 'min'}): **{best}**", ""]
    md += [f"![{p.stem}](plots/{p.name})" for p in plots]
    (sweep_dir / "sweep_summary.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return summary


COLUMNS = ["status", "rollouts", "mean_reward", "pass_rate", "kept_after_quality", "format", "dataset_rows",
           "mean_margin", "distinct_2", "tokens", "model_calls", "retries", "dpo_pairs_per_1k_calls", "wall_time_s"]


def _csv(rows: list[dict[str, Any]], swept: list[str]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["job", *swept, *COLUMNS])
    for r in rows:
        w.writerow([r["job"], *(r["overrides"].get(k) for k in swept), *(r.get(c) for c in COLUMNS)])
    return out.getvalue()


def table_md(rows: list[dict[str, Any]], keys: list[str]) -> str:
    """A markdown table: one row per run, the given override keys then the metric columns."""
    head = ["job", *keys, *COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["job"], *(r["overrides"].get(k, "") for k in keys), *(r.get(c) for c in COLUMNS)]
        lines.append("| " + " | ".join("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
                                       for v in cells) + " |")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Hydra callback: summarize the sweep dir when a multirun ends."""

    def __init__(self, objective: str = "mean_reward", maximize: bool = True):
        self.objective, self.maximize = objective, maximize

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        summary = summarize(sweep_dir, self.objective, self.maximize)
        log.info("sweep summary: %s (best job for %s: %s)", sweep_dir / "sweep_summary.md", self.objective,
                 summary["best_job"])
