"""A sweep's plots: mean reward and pass rate vs temperature, rows kept vs threshold, and rows over
temperature × threshold (``sweep_summary.md`` links them). Rows are ``rollgen.metrics.run_metrics`` plus the
job's ``overrides``; figures use ``rollgen.plots``' Agg canvas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rollgen.plots import agg_figure

__all__ = ["sweep_figures", "write_sweep_plots"]

TEMPERATURE = "sampler.responses_create_params.temperature"
THRESHOLD = "quality.min_reward_threshold"
ROW_NAMES = {"dpo": "DPO pairs", "sft": "SFT rows", "kto": "KTO rows", "rl": "RL prompts"}


def _swept(row: dict[str, Any], key: str) -> float | None:
    try:
        return float(row["overrides"][key])
    except (KeyError, ValueError):
        return None


def _rows_name(rows: list[dict[str, Any]]) -> str:
    """What a sweep's dataset rows are: "DPO pairs" when every job wrote DPO, "dataset rows" when they differ."""
    formats = {r.get("format") for r in rows}
    return ROW_NAMES.get(formats.pop(), "dataset rows") if len(formats) == 1 else "dataset rows"


def _by_x(rows: list[dict[str, Any]], key: str, metric: str) -> tuple[list[float], list[float]]:
    """The metric's mean over the jobs at each value of the swept ``key``."""
    groups: dict[float, list[float]] = {}
    for r in rows:
        x = _swept(r, key)
        if x is not None and isinstance(r.get(metric), (int, float)):
            groups.setdefault(x, []).append(r[metric])
    xs = sorted(groups)
    return xs, [sum(groups[x]) / len(groups[x]) for x in xs]


# metric -> (label, line style): dashed, hollow markers under solid ones, so equal values show both lines
_LINES = {"pass_rate": ("pass rate", {"linestyle": "--", "marker": "s", "markersize": 9, "fillstyle": "none"}),
          "mean_reward": ("mean reward", {"marker": "o", "markersize": 5}),
          "kept_after_quality": ("curated rollouts", {"linestyle": "--", "marker": "s", "markersize": 9,
                                                      "fillstyle": "none"}),
          "dataset_rows": ("", {"marker": "o", "markersize": 5})}


def _line_plot(rows: list[dict[str, Any]], key: str, metrics: list[str], title: str, ylabel: str,
               share: bool) -> Any:
    if len({_swept(r, key) for r in rows} - {None}) < 2:
        return None
    fig = agg_figure(5.5, 3.8, left=0.14, bottom=0.14, top=0.88)
    ax = fig.add_subplot()
    for metric in metrics:
        xs, ys = _by_x(rows, key, metric)
        label, style = _LINES[metric]
        ax.plot(xs, ys, label=label or _rows_name(rows), linewidth=1.6, **style)
    swept = sorted({x for r in rows if (x := _swept(r, key)) is not None})
    if len(swept) <= 12:
        ax.set_xticks(swept, [f"{x:g}" for x in swept])
    ax.set(xlabel=key.rsplit(".", 1)[-1], ylabel=ylabel, title=title)
    if share:
        ax.set_ylim(0, 1.02)
    else:
        ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _heatmap(rows: list[dict[str, Any]]) -> Any:
    temps = sorted({x for r in rows if (x := _swept(r, TEMPERATURE)) is not None})
    thresholds = sorted({x for r in rows if (x := _swept(r, THRESHOLD)) is not None})
    if len(temps) < 2 or len(thresholds) < 2:
        return None
    cells: dict[tuple[int, int], list[float]] = {}
    for r in rows:
        t, q = _swept(r, TEMPERATURE), _swept(r, THRESHOLD)
        if t is not None and q is not None:
            cells.setdefault((thresholds.index(q), temps.index(t)), []).append(r.get("dataset_rows") or 0)
    grid = np.full((len(thresholds), len(temps)), np.nan)
    for (i, j), values in cells.items():
        grid[i, j] = sum(values) / len(values)
    name = _rows_name(rows)
    fig = agg_figure(5.8, 4.0, left=0.14, bottom=0.14, top=0.88, right=0.9)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(temps)), [f"{t:g}" for t in temps])
    ax.set_yticks(range(len(thresholds)), [f"{q:g}" for q in thresholds])
    ax.set(xlabel="temperature", ylabel="min_reward_threshold", title=f"{name} by temperature and threshold")
    for (i, j), v in np.ndenumerate(grid):
        if np.isnan(v):
            continue
        r, g, b, _ = im.cmap(im.norm(v))
        dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5  # text that reads on the cell's colour
        ax.text(j, i, f"{v:g}", ha="center", va="center", color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=name)
    return fig


def sweep_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A sweep's plots by file stem: mean reward and pass rate vs temperature, rows kept vs threshold, and
    rows over temperature × threshold; each only when the sweep varies what it shows."""
    figures = {
        "reward_vs_temperature": _line_plot(rows, TEMPERATURE, ["pass_rate", "mean_reward"],
                                            "Mean reward and pass rate vs temperature", "value (mean over jobs)",
                                            share=True),
        "kept_vs_threshold": _line_plot(rows, THRESHOLD, ["kept_after_quality", "dataset_rows"],
                                        "Rows kept vs min_reward_threshold", "rows (mean over jobs)", share=False),
        "pairs_heatmap": _heatmap(rows),
    }
    return {name: fig for name, fig in figures.items() if fig is not None}


def write_sweep_plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write ``sweep_figures(rows)`` as ``out/<name>.png``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in sweep_figures(rows).items():
        fig.savefig(out / f"{name}.png")
        written.append(out / f"{name}.png")
    return written
