"""The README's first command, on a handful of tasks, with the real embedded model (no fakes).

A 135M model answers as it likes: these tests assert only what holds whatever it says (every rollout
accounted for, statuses and rewards in range, every file loads, the llama.cpp server gone afterwards, and a
run with no dataset rows says why), never that it solved a task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rollgen.formats.validate import validate

pytestmark = pytest.mark.slow


def _processes_with(marker: str) -> list[int]:
    """Pids of this user's live processes whose environment holds ``marker`` (the run's children inherit it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie is gone, only not yet reaped
                    pids.append(int(entry.name))
        except OSError:  # exited meanwhile, or not ours
            continue
    return pids


def test_processes_with_finds_a_live_child() -> None:
    """The leak check below could pass by seeing nothing: show it sees a process that carries the marker."""
    marker = f"ROLLGEN_TEST_RUN={uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             env={**os.environ, marker.split("=")[0]: marker.split("=")[1]})
    try:
        assert _processes_with(marker) == [child.pid]
    finally:
        child.communicate(b"")
    assert _processes_with(marker) == []


def test_default_policy_end_to_end(tmp_path: Path, cache_dir: Path) -> None:
    marker = uuid.uuid4().hex
    p = subprocess.run(
        [sys.executable, "-m", "rollgen", "server=math", "sampler=dpo", "server.size=3",
         "sampler.responses_create_params.max_output_tokens=96", "hydra.run.dir=run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "ROLLGEN_TEST_RUN": marker})
    assert p.returncode == 0, p.stderr[-3000:]
    assert _processes_with(f"ROLLGEN_TEST_RUN={marker}") == []  # the llama.cpp server went with the run
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "complete" and report["model"] == "smollm2-135m-instruct"
    assert report["collection"]["rollouts"] == 6 and report["collection"]["tasks"] == 3
    rows = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(f"{t}#{k}" for t in {r["task_id"] for r in rows} for k in (0, 1))
    assert {r["status"] for r in rows} <= {"ok", "truncated"}
    for r in rows:
        assert r["usage"]["completion_tokens"] > 0 and r["messages"][-1]["role"] == "assistant"
        assert 0.0 <= r["reward"] <= 1.0 and r["verifier"] in ("math", "guards")
        if r["verifier"] == "math":  # scored by the verifier: it says what it read and what it expected
            assert r["reward_details"]["expected"] is not None and r["reward_details"]["rule"]
        else:  # caught by a reward-hacking guard (hedging, truncation...) before the verifier: reward 0
            assert r["reward"] == 0.0 and r["reward_details"]["guards"]
        assert r["sampling"]["temperature"] == 0.7
    assert report["collection"]["mean_reward"] == pytest.approx(sum(r["reward"] for r in rows) / 6, abs=1e-6)

    # the funnel accounts for every rollout, and the dataset files hold exactly the rows the report counts
    funnel = report["funnel"]
    assert funnel[0]["in"] == 6 and all(a["out"] == b["in"] for a, b in zip(funnel, funnel[1:], strict=False))
    assert report["kept"]["curated"] == funnel[-1]["out"] == len((run / "curated.jsonl").read_text().splitlines())
    n_rows = report["kept"]["dataset_rows"]
    split_files = sorted((run / "dataset").glob("*.jsonl"))
    assert sum(len(f.read_text().splitlines()) for f in split_files) == n_rows
    md = (run / "report.md").read_text()
    if n_rows:  # the model answered some tasks right and some wrong: pairs that load and validate
        result = validate(run / "dataset", "dpo")
        assert result.ok and result.rows == n_rows, result.errors
    else:  # it did not: report.md and the console say which stage took the rows and what to change
        why = next(line for line in md.splitlines() if "0 dataset rows" in line).removeprefix("- ")
        assert why in p.stdout + p.stderr  # Hydra logs to stdout, the progress bar is on stderr
        emptied = next((f["filter"] for f in funnel if f["in"] and not f["out"]), None)
        assert (f"the quality filter `{emptied}`" if emptied else "format `dpo` made no rows") in why
    assert (run / "dataset" / "README.md").is_file()
    assert "Collecting rollouts" in p.stderr
