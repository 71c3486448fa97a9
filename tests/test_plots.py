"""Plots people read: labels that fit and do not overlap, titles and axis labels, whole-number k, the right
name for a sweep's rows, text that contrasts with its cell, and no empty progress bar for a reused run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rollgen
from rollgen.plots import pass_curves_figure, pass_rate_figure
from rollgen.sweep_plots import sweep_figures
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI

TEMP, THRESH = "sampler.responses_create_params.temperature", "quality.min_reward_threshold"


def _difficulty(**ranges: list[int]) -> str:
    return json.dumps(ranges, sort_keys=True)  # as the quality metrics label a dict-valued metadata field


def test_pass_rate_labels_are_readable_and_stay_in_their_panel() -> None:
    values = [_difficulty(num_digits=[1, 1], num_terms=[2, 2]), _difficulty(num_digits=[1, 4], num_terms=[2, 6]),
              _difficulty(num_animals=[3, 10], num_instances=[1, 15])]
    table = [{"value": v, "tasks": 20, "mean_reward": mean} for v, mean in zip(values, [0.69, 0.0, None], strict=True)]
    task_means = np.histogram(np.linspace(0, 1, 60), np.linspace(0, 1, 11))[0].tolist()
    fig = pass_rate_figure({"by_metadata": {"difficulty": table}, "pass_rate": {"histogram": task_means}})
    hist, bars = fig.axes
    labels = [t.get_text() for t in bars.get_yticklabels()]
    assert labels[::-1][0] == "num_digits 1, num_terms 2"
    assert labels[::-1][1] == "num_digits 1–4, num_terms\n2–6"
    assert not any(c in "".join(labels) for c in '{}[]"')
    renderer = fig.canvas.get_renderer()
    assert bars.get_tightbbox(renderer).x0 > hist.get_tightbbox(renderer).x1  # labels do not run into the histogram
    assert bars.get_tightbbox(renderer).x1 <= fig.bbox.x1  # nor off the figure
    assert bars.get_title() == "Mean reward by difficulty" and hist.get_ylabel() == "tasks"
    assert {t.get_text() for t in bars.texts} == {"0.69 (20 tasks)", "0.00 (20 tasks)"}  # an empty bar still says so


@pytest.mark.parametrize("kmax", [2, 4, 16])
def test_pass_at_k_ticks_are_whole_numbers(kmax: int) -> None:
    curve = {k: k / kmax for k in range(1, kmax + 1)}
    ax = pass_curves_figure({"pass@k": curve, "maj@k": curve}).axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_title() and ax.get_ylabel()


def _sweep_rows(fmt: str) -> list[dict]:
    rows = []
    for t in (0.2, 0.5, 0.7):
        for q in (0.6, 0.8):
            rate = 1 - t
            rows.append({"overrides": {TEMP: str(t), THRESH: str(q)}, "format": fmt, "mean_reward": rate,
                         "pass_rate": rate, "kept_after_quality": round(40 * rate), "dataset_rows": round(20 * rate * q)})
    return rows


@pytest.mark.parametrize(("fmt", "name"), [("sft", "SFT rows"), ("dpo", "DPO pairs"), ("rl", "RL prompts")])
def test_sweep_plots_have_titles_labels_and_name_their_rows(fmt: str, name: str) -> None:
    figs = sweep_figures(_sweep_rows(fmt))
    assert set(figs) == {"reward_vs_temperature", "kept_vs_threshold", "pairs_heatmap"}
    for fig in figs.values():
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    heat = figs["pairs_heatmap"]
    assert heat.axes[1].get_ylabel() == name and heat.axes[0].get_title().startswith(name)
    assert name in [t.get_text() for t in figs["kept_vs_threshold"].axes[0].get_legend().get_texts()]


def test_sweep_of_several_formats_calls_them_dataset_rows() -> None:
    rows = _sweep_rows("sft")
    rows[0]["format"] = "dpo"
    assert sweep_figures(rows)["pairs_heatmap"].axes[1].get_ylabel() == "dataset rows"


def test_equal_mean_reward_and_pass_rate_both_show() -> None:
    ax = sweep_figures(_sweep_rows("sft"))["reward_vs_temperature"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    mean, rate = lines["mean reward"], lines["pass rate"]
    assert list(mean.get_ydata()) == list(rate.get_ydata())  # binary rewards: the same values
    # one drawn over the other would hide it: different styles, and the lower one's markers are hollow and larger
    assert (mean.get_linestyle(), mean.get_marker()) != (rate.get_linestyle(), rate.get_marker())
    assert rate.get_fillstyle() == "none" and rate.get_markersize() > mean.get_markersize()


def _luminance(rgba: tuple[float, ...]) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_heatmap_numbers_contrast_with_their_cells() -> None:
    from matplotlib.colors import to_rgba

    ax = sweep_figures(_sweep_rows("dpo"))["pairs_heatmap"].axes[0]
    image = ax.get_images()[0]
    cells = image.get_array()
    assert len(ax.texts) == cells.size
    for text in ax.texts:
        j, i = (round(c) for c in text.get_position())
        background = image.cmap(image.norm(cells[i, j]))
        assert text.get_text() == f"{cells[i, j]:g}"
        assert abs(_luminance(to_rgba(text.get_color())) - _luminance(background)) > 0.4, text.get_text()


def test_a_run_that_reuses_every_rollout_shows_no_empty_progress_bar(tmp_path: Path,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 4)
    with serve_in_thread(FakeOpenAI()) as url:
        for run in ("a", "b"):
            rollgen.run(rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}"],
                                        output_dir=str(tmp_path / run)))
            err = capfd.readouterr().err
            if run == "a":
                assert "Collecting rollouts" in err and "4/4" in err
    assert "Collecting rollouts" not in err and "0rollout" not in err  # b reused all 4: no bar at all
    assert json.loads((tmp_path / "b" / "report.json").read_text())["resume"]["reused"] == 4
