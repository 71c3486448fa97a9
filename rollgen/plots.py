"""Quality plots as PNG files (matplotlib's Agg canvas, no display, imported only when plots are drawn).

The report stage draws every plot of a run from the typed stage results (``rollgen.results``):
``write_plots`` draws, from a ``Curation``, the reward histogram, per-task pass rates (and mean reward per
difficulty / domain / source when tasks carry them), the completion length distribution, lexical diversity
with the duplicate rate, and the funnel; ``write_pass_curves`` draws pass@k and maj@k of a run. Both return
the paths relative to the run dir, which report.md links (a sweep's plots are in ``rollgen.sweep_plots``).
The ``*_figure`` functions build the figures without writing them.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rollgen.results import Curation

__all__ = ["QUALITY_PLOTS", "agg_figure", "pass_curves_figure", "pass_rate_figure", "write_pass_curves", "write_plots"]

QUALITY_PLOTS = ("reward_hist", "pass_rate", "length_hist", "diversity", "funnel")  # what write_plots draws

ALL, KEPT = "#9aa5b1", "#2f6db5"


def agg_figure(width: float = 6.0, height: float = 3.6, left: float = 0.12, **margins: float) -> Any:
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


def _hist(ax: Any, edges: Any, counts: list[int], **kw: Any) -> None:
    """A histogram whose counts are known (one bar per bin, as ``ax.hist`` of the values draws it)."""
    edges = np.asarray(edges, dtype=np.float64)
    ax.hist(edges[:-1], bins=edges, weights=np.asarray(counts, dtype=np.float64), **kw)


def write_plots(curation: Curation, plots_dir: Path) -> list[str]:
    """The quality plots of ``curation`` (``QUALITY_PLOTS``) as PNGs in ``plots_dir``."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    m, funnel = curation.metrics, curation.funnel
    bins = np.linspace(0, 1, 11)  # the bins of the quality metrics' reward histograms

    fig = agg_figure()
    ax = fig.add_subplot()
    _hist(ax, bins, m["reward"]["histogram"]["all"], color=ALL, label="all rollouts")
    _hist(ax, bins, m["reward"]["histogram"]["curated"], color=KEPT, label="curated")
    ax.set(xlabel="reward", ylabel="rollouts", title="Reward")
    ax.legend()
    _save(fig, plots_dir / "reward_hist.png", out)

    _save(pass_rate_figure(m), plots_dir / "pass_rate.png", out)

    fig = agg_figure()
    ax = fig.add_subplot()
    lengths = curation.lengths
    if lengths is not None and lengths.edges:
        _hist(ax, lengths.edges, lengths.all, color=ALL, label="all rollouts")
        _hist(ax, lengths.edges, lengths.curated, color=KEPT, label="curated")
        ax.legend()
    unit = lengths.unit if lengths is not None else m["length"]["unit"]
    ax.set(xlabel=f"completion length ({unit})", ylabel="rollouts", title="Completion length")
    _save(fig, plots_dir / "length_hist.png", out)

    fig = agg_figure()
    ax = fig.add_subplot()
    d = m["distinct"]
    dup = m["duplicates"]["exact_rate"]
    names = [*d, "exact duplicates"]
    x = np.arange(len(names))
    for offset, which, color in ((-0.2, "all", ALL), (0.2, "curated", KEPT)):
        values = [d[k][which] or 0 for k in d] + [dup[which] or 0]
        ax.bar(x + offset, values, width=0.4, color=color, label="all rollouts" if which == "all" else "curated")
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1), ylabel="share", title="Diversity and duplicates")
    ax.legend()
    _save(fig, plots_dir / "diversity.png", out)

    fig = agg_figure(6.0, 1.2 + 0.3 * max(len(funnel), 1), left=0.25, bottom=0.5 / (1.2 + 0.3 * max(len(funnel), 1)))
    ax = fig.add_subplot()
    names = [f["filter"] for f in funnel][::-1]
    ax.barh(names, [f["in"] for f in funnel][::-1], color=ALL, label="in")
    ax.barh(names, [f["out"] for f in funnel][::-1], color=KEPT, label="out")
    ax.set(xlabel="rollouts", title="Quality funnel")
    ax.legend(loc="lower right")
    _save(fig, plots_dir / "funnel.png", out)
    return out


def _short_label(value: str, width: int = 26) -> str:
    """A metadata value for a tick label: ``{"num_digits": [1, 4]}`` reads ``num_digits 1–4``; at most two
    lines of ``width`` characters."""
    try:
        parsed = json.loads(value)
    except ValueError:  # a plain string, or JSON cut short by the report: drop the punctuation
        parsed = None
    if isinstance(parsed, dict):
        text = ", ".join(f"{k} {_range(v)}" for k, v in parsed.items())
    else:
        text = re.sub(r"\[([^\[\],]+), ([^\[\],]+)\]", r"\1–\2", value).translate(str.maketrans("", "", '{}"'))
    lines = textwrap.wrap(text, width) or [""]
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def _range(v: Any) -> str:
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"{v[0]:g}" if v[0] == v[1] else f"{v[0]:g}–{v[1]:g}"
    return str(v)


def pass_rate_figure(metrics: dict[str, Any]) -> Any:
    """Per-task pass rates (the histogram of each task's mean reward in the quality ``metrics``), and beside them
    (when tasks carry metadata) the mean reward per value of the first metadata key with several values, each
    bar labelled with its mean and task count."""
    tables = [(k, t) for k, t in metrics["by_metadata"].items() if len(t) > 1]
    fig = agg_figure(6.0 + 5.0 * bool(tables))
    left_w = 0.34 if tables else 0.83
    ax = fig.add_axes((0.08 if tables else 0.12, 0.15, left_w, 0.75))
    _hist(ax, np.linspace(0, 1, 11), metrics["pass_rate"]["histogram"], color=KEPT)
    ax.set(xlabel="mean reward of the task's rollouts", ylabel="tasks", title="Pass rate per task")
    if tables:
        key, table = tables[0]
        labels = [_short_label(r["value"]) for r in table][::-1]
        ax2 = fig.add_axes((0.64, 0.15, 0.3, 0.75))  # the left ~2 inches of the panel's side hold the labels
        means = [r["mean_reward"] or 0 for r in table][::-1]
        ax2.barh(range(len(labels)), means, color=KEPT)
        ax2.set_yticks(range(len(labels)), labels, fontsize=7)
        for y, (mean, r) in enumerate(zip(means, table[::-1], strict=True)):
            ax2.text(min(mean, 1.0) + 0.02, y, f"{mean:.2f} ({r['tasks']} tasks)", va="center", fontsize=7)
        ax2.set(xlabel="mean reward", title=f"Mean reward by {key}", xlim=(0, 1.25))
        ax2.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    return fig


def write_pass_curves(curves: dict[str, dict[int, float]], plots_dir: Path) -> list[str]:
    """pass@k and maj@k against k (the number of repeats used), one line each; nothing for one repeat."""
    if len(curves.get("pass@k", {})) < 2:
        return []
    plots_dir.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    _save(pass_curves_figure(curves), plots_dir / "pass_at_k.png", out)
    return out


def pass_curves_figure(curves: dict[str, dict[int, float]]) -> Any:
    fig = agg_figure(5.0, 3.4)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=name)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # k counts samples: whole numbers only
    ax.set_xlabel("k (samples per task)")
    ax.set_ylabel("mean over tasks")
    ax.set_title("pass@k and maj@k")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
