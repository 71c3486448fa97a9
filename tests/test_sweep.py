"""Sweeps: a multirun over temperature x threshold collects once per temperature, and is summarized."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rollgen.metrics import maj_at_k, pass_at_k, pass_curves
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


def test_pass_at_k_known_values() -> None:
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)  # 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert pass_at_k(3, 2, 2) == 1.0  # n - c < k
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_maj_at_k_and_curves() -> None:
    # answers 7 (right) twice and 8 (wrong) once: a vote of 3 picks 7; a vote of 1 is right 2/3 of the time.
    samples = [("7", True), ("8", False), ("7", True)]
    assert maj_at_k(samples, 3) == 1.0
    assert maj_at_k(samples, 1) == pytest.approx(2 / 3)
    curves = pass_curves({"a": samples, "b": [("1", False), ("2", False), ("3", False)]})
    assert curves["pass@k"][1] == pytest.approx((2 / 3 + 0) / 2)
    assert curves["pass@k"][3] == pytest.approx(0.5)


@pytest.mark.slow
def test_multirun_collects_once_per_temperature_and_summarizes(tmp_path: Path) -> None:
    """The seed's sweep (3 temperatures x 0.6,0.8 thresholds, the +sweep=temperature_threshold preset)."""
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 10)
    fake = FakeOpenAI(correct_rate=0.6, seed=5)
    with serve_in_thread(fake) as url:
        p = subprocess.run(
            [sys.executable, "-m", "rollgen", "+sweep=temperature_threshold", "sampler=sft", "sampler.num_repeats=2",
             "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
             "hydra.sweep.dir=sweep", "format.validation_fraction=0", "objective=kept_after_quality"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert fake.requests == 3 * 10 * 2  # 3 collections of 10 tasks x 2 repeats, not 6
    sweep = tmp_path / "sweep"
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(summary["jobs"]) == 6 and summary["swept"] == [
        "quality.min_reward_threshold", "sampler.responses_create_params.temperature"]
    for job in summary["jobs"]:
        report = json.loads((sweep / job["job"] / "report.json").read_text())
        assert job["mean_reward"] == report["collection"]["mean_reward"]
        assert job["kept_after_quality"] == report["kept"]["curated"]
        assert job["sft_rows"] == report["kept"]["dataset_rows"] and job["dpo_pairs"] == 0
    assert sum(job["reused_rollouts"] > 0 for job in summary["jobs"]) == 3
    best = max(summary["jobs"], key=lambda j: j["kept_after_quality"])
    assert summary["best_job"] == best["job"] and summary["objective"] == "kept_after_quality"
    kept = {(j["overrides"]["sampler.responses_create_params.temperature"], j["overrides"][
        "quality.min_reward_threshold"]): j["kept_after_quality"] for j in summary["jobs"]}
    assert all(kept[(t, "0.6")] >= kept[(t, "0.8")] for t in ("0.2", "0.5", "0.7"))
    rows = list(csv.DictReader(open(sweep / "sweep_summary.csv")))
    assert len(rows) == 6 and {r["sampler.responses_create_params.temperature"] for r in rows} == {"0.2", "0.5", "0.7"}
    for name in ["reward_vs_temperature", "kept_vs_threshold", "pairs_heatmap"]:
        png = sweep / "plots" / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert "Best job for `kept_after_quality`" in (sweep / "sweep_summary.md").read_text()


def test_compare_prints_each_runs_metrics(tmp_path: Path) -> None:
    import rollgen
    from rollgen.commands.compare import main as compare

    tasks = write_arith_tasks(tmp_path / "t.jsonl", 6)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=1)) as url:
        for name, temp in [("a", 0.2), ("b", 0.9)]:
            rollgen.run(rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                         "progress=false", f"sampler.responses_create_params.temperature={temp}"],
                                        output_dir=str(tmp_path / name)))
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert compare([str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    rows = json.loads(buf.getvalue())
    reports = [json.loads((tmp_path / n / "report.json").read_text()) for n in "ab"]
    assert [r["mean_reward"] for r in rows] == [rep["collection"]["mean_reward"] for rep in reports]
    assert compare([str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_optuna_sweep_maximizes_the_objective(tmp_path: Path) -> None:
    import yaml

    tasks = write_arith_tasks(tmp_path / "t.jsonl", 8)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=2)) as url:
        p = subprocess.run(
            [sys.executable, "-m", "rollgen", "+sweep=optuna_dpo", "policy=openai", f"policy.base_url={url}",
             f"server.data_path={tasks}", "progress=false", "hydra.sweeper.n_trials=3", "hydra.sweep.dir=sw"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "sw" / "optimization_results.yaml").read_text())["best_value"]
    summary = json.loads((tmp_path / "sw" / "sweep_summary.json").read_text())
    assert len(summary["jobs"]) == 3
    assert best == max(j["dpo_pairs_per_1k_calls"] for j in summary["jobs"]) > 0


def test_run_report_has_pass_and_maj_at_k(tmp_path: Path) -> None:
    import rollgen

    tasks = write_arith_tasks(tmp_path / "t.jsonl", 8)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=4)) as url:
        report = rollgen.run(rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                              "progress=false", "sampler.num_repeats=4"], output_dir=str(tmp_path / "r")))
    rows = [json.loads(x) for x in (tmp_path / "r" / "rollouts.jsonl").read_text().splitlines()]
    by_task: dict[str, list[bool]] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r["reward"] == 1.0)
    expected = sum(pass_at_k(4, sum(v), 2) for v in by_task.values()) / len(by_task)
    assert report["pass_at_k"]["pass@k"][2] == pytest.approx(expected)
    assert report["pass_at_k"]["pass@k"][4] == pytest.approx(sum(any(v) for v in by_task.values()) / len(by_task))
    assert set(report["pass_at_k"]["maj@k"]) == {1, 2, 3, 4}
    png = tmp_path / "r" / "plots" / "pass_at_k.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and "plots/pass_at_k.png" in (tmp_path / "r" / "report.md").read_text()
    assert "## pass@k and maj@k" in (tmp_path / "r" / "report.md").read_text()
