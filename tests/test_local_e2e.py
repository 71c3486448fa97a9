"""The README's first command, on a handful of tasks, with the real embedded model (no fakes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_default_policy_end_to_end(tmp_path: Path, cache_dir: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "rollgen", "server=math", "sampler=dpo", "server.size=3",
         "sampler.responses_create_params.max_output_tokens=96", "hydra.run.dir=run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["model"] == "smollm2-135m-instruct"
    assert report["collection"]["rollouts"] == 6 and report["collection"]["tasks"] == 3
    rows = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert {r["status"] for r in rows} <= {"ok", "truncated"}
    for r in rows:
        assert r["completion"].strip() and r["usage"]["completion_tokens"] > 0
        assert r["reward"] in (0.0, 1.0) and r["verifier"] in ("math", "guards")
        if r["verifier"] == "math":  # scored by the verifier: it says what it read and what it expected
            assert r["reward_details"]["expected"] is not None and r["reward_details"]["rule"]
        else:  # caught by a reward-hacking guard (hedging, truncation...) before the verifier: reward 0
            assert r["reward"] == 0.0 and r["reward_details"]["guards"]
        assert r["messages"][-1]["role"] == "assistant" and r["sampling"]["temperature"] == 0.7
    assert (run / "dataset" / "train.jsonl").exists() and (run / "report.md").exists()
    assert "Collecting rollouts" in p.stderr
