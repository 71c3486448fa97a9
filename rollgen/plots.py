"""Quality plots as PNG files (matplotlib's Agg canvas, no display, imported only when plots are drawn).

``write_plots`` draws the reward histogram, per-task pass rates (and mean reward per difficulty /
domain / source when tasks carry them), the completion length distribution, lexical diversity with the
duplicate rate, and the funnel; it returns the paths relative to the run dir, which report.md links.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rollgen.quality.metrics import Metrics

__all__ = ["QUALITY_PLOTS", "write_plots"]

QUALITY_PLOTS = ("reward_hist", "pass_rate", "length_hist", "diversity", "funnel")  # what write_plots draws

ALL, KEPT = "#9aa5b1", "#2f6db5"


def _figure(width: float = 6.0, height: float = 3.6, left: float = 0.12, **margins: float) -> Any:
    """A figure on the Agg canvas with fixed margins (matplotlib's layout engines cost ~0.2 s a figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left, **{"bottom": 0.15, "right": 0.97, "top": 0.9, **margins})
    return fig


def _save(fig: Any, path: Path, out: list[str]) -> None:
    fig.savefig(path)
    out.append(f"{path.parent.name}/{path.name}")


def write_plots(m: Metrics, funnel: list[dict[str, Any]], plots_dir: Path) -> list[str]:
    plots_dir.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    reward, kept = m.rows.reward, m.kept
    bins = np.linspace(0, 1, 11)

    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(reward[~np.isnan(reward)], bins=bins, color=ALL, label="all rollouts")
    ax.hist(reward[kept & ~np.isnan(reward)], bins=bins, color=KEPT, label="curated")
    ax.set(xlabel="reward", ylabel="rollouts", title="Reward")
    ax.legend()
    _save(fig, plots_dir / "reward_hist.png", out)

    tables = [(k, t) for k, t in m.summary["by_metadata"].items() if len(t) > 1]
    fig = _figure(6.0 + 4.0 * bool(tables), left=0.08 if tables else 0.12, wspace=0.45)
    ax = fig.add_subplot(1, 1 + bool(tables), 1)
    ax.hist(m.task_mean[~np.isnan(m.task_mean)], bins=bins, color=KEPT)
    ax.set(xlabel="mean reward of the task's rollouts", ylabel="tasks", title="Pass rate per task")
    if tables:
        key, table = tables[0]
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.barh([r["value"] for r in table][::-1], [r["mean_reward"] or 0 for r in table][::-1], color=KEPT)
        ax2.set(xlabel="mean reward", title=f"by {key}", xlim=(0, 1))
        ax2.tick_params(axis="y", labelsize=7)
    _save(fig, plots_dir / "pass_rate.png", out)

    fig = _figure()
    ax = fig.add_subplot()
    length = m.length[~np.isnan(m.length)]
    if len(length):
        edges = np.histogram_bin_edges(length, bins=40)
        ax.hist(length, bins=edges, color=ALL, label="all rollouts")
        ax.hist(m.length[kept & ~np.isnan(m.length)], bins=edges, color=KEPT, label="curated")
        ax.legend()
    ax.set(xlabel=f"completion length ({m.length_unit})", ylabel="rollouts", title="Completion length")
    _save(fig, plots_dir / "length_hist.png", out)

    fig = _figure()
    ax = fig.add_subplot()
    d = m.summary["distinct"]
    dup = m.summary["duplicates"]["exact_rate"]
    names = [*d, "exact duplicates"]
    x = np.arange(len(names))
    for offset, which, color in ((-0.2, "all", ALL), (0.2, "curated", KEPT)):
        values = [d[k][which] or 0 for k in d] + [dup[which] or 0]
        ax.bar(x + offset, values, width=0.4, color=color, label="all rollouts" if which == "all" else "curated")
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1), ylabel="share", title="Diversity and duplicates")
    ax.legend()
    _save(fig, plots_dir / "diversity.png", out)

    fig = _figure(6.0, 1.2 + 0.3 * max(len(funnel), 1), left=0.25, bottom=0.5 / (1.2 + 0.3 * max(len(funnel), 1)))
    ax = fig.add_subplot()
    names = [f["filter"] for f in funnel][::-1]
    ax.barh(names, [f["in"] for f in funnel][::-1], color=ALL, label="in")
    ax.barh(names, [f["out"] for f in funnel][::-1], color=KEPT, label="out")
    ax.set(xlabel="rollouts", title="Quality funnel")
    ax.legend(loc="lower right")
    _save(fig, plots_dir / "funnel.png", out)
    return out


def write_pass_curves(curves: dict[str, dict[int, float]], plots_dir: Path) -> list[str]:
    """pass@k and maj@k against k (the number of repeats used), one line each."""
    if len(curves.get("pass@k", {})) < 2:
        return []
    plots_dir.mkdir(parents=True, exist_ok=True)
    fig = _figure(5.0, 3.4)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=name)
    ax.set_xlabel("k (samples per task)")
    ax.set_ylabel("mean over tasks")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.grid(alpha=0.3)
    out: list[str] = []
    _save(fig, plots_dir / "pass_at_k.png", out)
    return out
