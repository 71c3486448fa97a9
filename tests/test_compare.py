"""One source for each number: ``rollgen compare``, report.md and the dataset card agree about a run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import rollgen
from rollgen.commands.compare import main
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


def _run(tmp_path: Path, name: str, *overrides: str) -> Path:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 12)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=4)) as url:
        rollgen.run(rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                     "progress=false", "sampler.num_samples_in_parallel=1", *overrides],
                                    output_dir=str(tmp_path / name)))
    return tmp_path / name


def _compare(capsys: pytest.CaptureFixture[str], *runs: Path) -> list[dict]:
    assert main([*map(str, runs), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_reports_rows_of_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rl = _run(tmp_path, "rl", "sampler=ppo", "sampler.num_repeats=2")
    sft = _run(tmp_path, "sft", "sampler=sft")
    jobs = _compare(capsys, rl, sft)
    for run, job in zip((rl, sft), jobs, strict=True):
        report = json.loads((run / "report.json").read_text())
        rows = sum(len(f.read_text().splitlines()) for f in (run / "dataset").glob("*.jsonl"))
        assert job["dataset_rows"] == report["kept"]["dataset_rows"] == rows > 0
        assert job["format"] == report["format"]
    assert main([str(rl), str(sft)]) == 0  # the markdown table has the same columns
    head, _, *lines = capsys.readouterr().out.splitlines()
    cols = [c.strip() for c in head.strip("|").split("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert [r[cols.index("format")] for r in cells] == ["rl", "sft"]
    assert [int(r[cols.index("dataset_rows")]) for r in cells] == [j["dataset_rows"] for j in jobs]


def test_distinct_2_and_hashes_agree_between_compare_report_and_card(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, "dpo", "sampler=dpo")
    (job,) = _compare(capsys, run)
    md = (run / "report.md").read_text()
    header = md.splitlines()[0:3]
    table = [line for line in md.splitlines() if line.startswith(("| |", "| curated |"))]  # quality metrics
    cols = [c.strip() for c in table[0].strip("|").split("|")]
    curated = [c.strip() for c in table[1].strip("|").split("|")]
    assert curated[cols.index("distinct-2")] == f"{job['distinct_2']:.1%}"
    collection = re.search(r"collection hash `([0-9a-f]+)`", "\n".join(header)).group(1)
    card = (run / "dataset" / "README.md").read_text()
    assert f"| collection hash | {collection} |" in card
    assert "config hash" not in "\n".join(header)  # one name per number: the card's "run config hash" is another
    assert {json.loads(line)["config_hash"] for line in (run / "rollouts.jsonl").read_text().splitlines()} == {collection}
