"""A run that ends with no dataset rows, or an export that writes nothing, says which stage and what to change."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import rollgen
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


def _run(tmp_path: Path, fake: FakeOpenAI, *overrides: str) -> dict:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 10)
    with serve_in_thread(fake) as url:
        return rollgen.run(rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                            "progress=false", *overrides], output_dir=str(tmp_path / "run")))


def _md_lines(tmp_path: Path) -> list[str]:
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## No data" in md
    return [line.removeprefix("- ") for line in md.split("## No data", 1)[1].split("##", 1)[0].splitlines()
            if line.startswith("- ")]


def test_a_quality_filter_that_takes_every_row_is_named_with_its_knob(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rollgen"):
        report = _run(tmp_path, FakeOpenAI(correct_rate=0.0), "sampler=sft")  # every answer wrong: reward 0
    assert report["kept"]["dataset_rows"] == 0
    assert report["empty"] == [
        "0 dataset rows: the quality filter `reward` dropped the last 10 of 10 rollouts (reward < 0.8: 10); no rollout "
        "reached quality.min_reward_threshold=0.8: lower it, raise sampler.num_repeats (now 1) for more tries per "
        "task, or use a stronger policy, or take `reward` out of quality.chain"]
    assert _md_lines(tmp_path) == report["empty"]
    assert report["empty"][0] in caplog.text  # on the console too


def test_a_format_that_makes_no_rows_says_what_it_needs(tmp_path: Path) -> None:
    # two repeats that are both right: curated rollouts, but no pair whose rewards differ
    report = _run(tmp_path, FakeOpenAI(), "sampler=dpo", "quality.chain=[status]")
    assert report["kept"]["curated"] == 20 and report["kept"]["dataset_rows"] == 0
    (line,) = report["empty"]
    assert line.startswith("0 dataset rows: format `dpo` made no rows from 20 curated rollouts (task without a "
                           "qualifying pair: 10)")
    assert "format.min_quality_difference (0.1)" in line and "sampler.num_repeats (now 2)" in line
    assert _md_lines(tmp_path) == [line]


def test_an_export_that_writes_nothing_says_why(tmp_path: Path) -> None:
    report = _run(tmp_path, FakeOpenAI(correct_rate=0.5, seed=3), "sampler=dpo", "integration=verl",
                  "sampler.num_samples_in_parallel=1")  # one at a time: the same answers every run
    assert report["kept"]["dataset_rows"] > 0
    (line,) = report["empty"]
    assert line.startswith(f"export/verl: no files written from {report['kept']['dataset_rows']} dpo rows: VeRL has "
                           "no offline DPO trainer")
    assert _md_lines(tmp_path) == [line]
    assert json.loads((tmp_path / "run" / "export" / "verl" / "manifest.json").read_text())["files"] == {}


def test_a_run_with_data_has_no_such_section(tmp_path: Path) -> None:
    report = _run(tmp_path, FakeOpenAI(), "sampler=sft")
    assert report["kept"]["dataset_rows"] == 10 and report["empty"] == []
    assert "## No data" not in (tmp_path / "run" / "report.md").read_text()


def test_a_user_integration_without_skipped_rows_in_its_manifest_is_named() -> None:
    from rollgen.explain import why_empty

    cfg = rollgen.compose(["sampler=sft"], output_dir=".")
    report = {"status": "complete", "kept": {"dataset_rows": 5, "curated": 5}, "funnel": [],
              "export": {"mine": {"files": []}}}  # a user's integration: no "skipped", no "notes"
    assert why_empty(report, cfg) == ["export/mine: no files written from 5 sft rows"]
