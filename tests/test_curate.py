"""Quality in a real run against the fake server, and ``rollgen curate`` re-running it with no model calls."""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path

import pytest

import rollgen
from rollgen import cli
from rollgen.commands import curate
from rollgen.rundir import read_jsonl
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


def _collect(tmp_path: Path, fake: FakeOpenAI, *extra: str) -> Path:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 20)
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
                               "sampler.num_repeats=4", *extra], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    return tmp_path / "run"


def _count(path: Path) -> int:
    return sum(1 for _ in read_jsonl(path))


def test_run_reports_funnel_metrics_and_plots(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rollgen")
    run = _collect(tmp_path, FakeOpenAI(correct_rate=0.5, seed=1), "quality.min_reward_threshold=0.0")
    report = json.loads((run / "report.json").read_text())
    assert [f["filter"] for f in report["funnel"]] == [  # sampler=sft (the default) picks quality=sft
        "status", "reward", "length", "repetition", "refusal", "decontaminate", "exact_dedup", "near_dedup",
        "cap_per_task"]
    exact = report["funnel"][6]
    assert exact["dropped"] > 0 and exact["reasons"] == {"exact duplicate": exact["dropped"]}  # the fake repeats itself
    curated, rejected = _count(run / "curated.jsonl"), _count(run / "rejected.jsonl")
    assert curated == report["kept"]["curated"] == report["funnel"][-1]["out"] and curated + rejected == 80
    q = report["quality"]
    assert q["rollouts"] == 80 and sum(q["reward"]["histogram"]["all"]) == 80 and 0 < q["reward"]["all"]["mean"] < 1
    assert q["duplicates"]["exact_rate"]["all"] > 0 and q["duplicates"]["exact_rate"]["curated"] == 0
    md = (run / "report.md").read_text()
    for plot in ("reward_hist", "pass_rate", "length_hist", "diversity", "funnel"):
        assert f"plots/{plot}.png" in report["plots"] and f"![{plot}](plots/{plot}.png)" in md
        assert (run / "plots" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"| exact_dedup | {exact['in']} | {exact['out']} |" in md
    assert any("quality: 80 rollouts ->" in r.getMessage() for r in caplog.records)  # the terminal funnel


def test_curate_retunes_without_any_request(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOpenAI(correct_rate=0.5, seed=2)
    run = _collect(tmp_path, fake, "quality.min_reward_threshold=0.0")
    before, requests = _count(run / "curated.jsonl"), fake.requests
    plots_before = json.loads((run / "report.json").read_text())["plots"]

    def no_network(*args: object) -> None:
        raise AssertionError("rollgen curate opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    assert curate.main([str(run), "quality.min_reward_threshold=1.0"]) == 0
    assert fake.requests == requests
    after = _count(run / "curated.jsonl")
    correct = sum(r["reward"] == 1.0 for r in read_jsonl(run / "rollouts.jsonl"))
    assert 0 < after < before and after <= correct
    assert all(r["reward"] == 1.0 for r in read_jsonl(run / "curated.jsonl"))
    assert after + _count(run / "rejected.jsonl") == 80
    report = json.loads((run / "report.json").read_text())
    assert report["kept"]["curated"] == after and report["curated_with"]["overrides"] == ["quality.min_reward_threshold=1.0"]
    assert report["collection"]["rollouts"] == 80  # the collection section survives
    assert sorted(report["plots"]) == sorted(plots_before)  # quality's redrawn, other stages' (pass@k) kept
    out = capsys.readouterr().out
    assert "quality: 80 rollouts -> " in out and "reward < 1" in out
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["quality"]["min_reward_threshold"] == 1.0

    # a preset keeps the run's threshold (a sampler preset set it), unless it is overridden too
    assert curate.main([str(run), "quality=rl"]) == 0
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["quality"]["kind"] == "rl" and saved["quality"]["min_reward_threshold"] == 1.0
    assert curate.main([str(run), "quality=sft", "quality.min_reward_threshold=0.0"]) == 0
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["quality"]["kind"] == "sft" and saved["quality"]["min_reward_threshold"] == 0.0
    assert _count(run / "curated.jsonl") == before  # the run's own chain (sft) again, at the run's threshold


def test_dpo_presets_end_to_end(tmp_path: Path) -> None:
    run = _collect(tmp_path, FakeOpenAI(correct_rate=0.5, seed=3), "sampler=dpo", "sampler.num_repeats=4",
                   "quality=dpo", "format.validation_fraction=0")
    report = json.loads((run / "report.json").read_text())
    names = [f["filter"] for f in report["funnel"]]
    assert names[-1] == "zero_variance" and "near_dedup" not in names
    zero = report["funnel"][-1]
    assert set(zero["reasons"]) <= {"zero variance", "group too small"} and zero["dropped"] > 0
    by_task: dict[str, set[float]] = {}
    for r in read_jsonl(run / "curated.jsonl"):
        by_task.setdefault(r["task_id"], set()).add(r["reward"])
    assert by_task and all(len(rewards) == 2 for rewards in by_task.values())  # every kept task can make a pair
    assert report["dataset"]["train"] == len(by_task)


def test_curate_says_which_filter_left_no_rows_and_forgets_it_once_rows_return(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _collect(tmp_path, FakeOpenAI(correct_rate=0.0), "quality.min_reward_threshold=0.0")
    assert json.loads((run / "report.json").read_text())["empty"] == []
    assert curate.main([str(run), "quality.min_reward_threshold=0.5"]) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("rollgen curate: 0 dataset rows: the quality filter `reward` dropped the last 80 of 80 "
                           "rollouts (reward < 0.5: 80)"), line
    report = json.loads((run / "report.json").read_text())
    assert report["kept"]["dataset_rows"] == 0 and report["empty"] == [line.removeprefix("rollgen curate: ")]
    assert "## No data" in (run / "report.md").read_text()
    assert curate.main([str(run), "quality.min_reward_threshold=0.0"]) == 0  # rows again: the note goes
    assert capsys.readouterr().err == ""
    report = json.loads((run / "report.json").read_text())
    assert report["kept"]["dataset_rows"] > 0 and report["empty"] == []
    assert "## No data" not in (run / "report.md").read_text()


def test_curate_rebuilds_a_missing_report_and_can_skip_plots(tmp_path: Path) -> None:
    run = _collect(tmp_path, FakeOpenAI(correct_rate=0.5, seed=4), "quality.min_reward_threshold=0.0")
    (run / "report.json").unlink()
    for png in (run / "plots").glob("*.png"):
        png.unlink()
    assert curate.main([str(run), "quality.plots=false", "quality=rl"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["collection"]["rollouts"] == 80 and report["plots"] == [] and not list((run / "plots").glob("*.png"))
    assert [f["filter"] for f in report["funnel"]][-3:] == ["pass_rate", "zero_variance", "reward"]
    assert "## Quality funnel" in (run / "report.md").read_text()


def test_curate_help_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        curate.main(["--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    assert "no model or network call" in help_text and "quality.min_reward_threshold" in help_text
    assert curate.main([str(tmp_path)]) == 2
    assert "not a rollgen run directory" in capsys.readouterr().err


def test_cli_dispatches_curate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run = _collect(tmp_path, FakeOpenAI(), "quality.min_reward_threshold=0.0")
    monkeypatch.setattr(sys, "argv", ["rollgen", "curate", str(run), "quality.filters.exact_dedup.field=completion",
                                      "quality.filters.bogus=1"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2 and "quality.filters.bogus" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["rollgen", "curate", str(run), "quality.filters.exact_dedup.field=completion"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0
    # the fake gives every correct answer the same words; across tasks they are now duplicates: one per distinct sum
    sums = {r["completion"] for r in read_jsonl(run / "curated.jsonl")}
    assert _count(run / "curated.jsonl") == len(sums)
