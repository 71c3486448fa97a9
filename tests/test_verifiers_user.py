"""A user's verifier from a training repo, end to end: a module and a config dir written to a temp folder,
selected with ``--config-dir my_conf verifier=my_reward``, run by the CLI against the fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI

pytestmark = pytest.mark.slow

MODULE = '''
"""my_rewards.py: the docs/verifiers.md worked example."""
import asyncio

from pydantic import BaseModel, ConfigDict, Field

from rollgen.verifiers import Verifier
from rollgen.verifiers.math import score_text


class ConciseCorrect(Verifier):
    """Right answer: 1.0; right but wordier than max_words: 1.0 - penalty; wrong: 0.0."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        max_words: int = Field(20, ge=1)
        penalty: float = Field(0.5, ge=0.0, le=1.0)

    name = "concise_correct"

    def verify(self, task, rollout):  # sync: rollgen runs it in a thread, off the event loop
        correct, details = score_text(rollout.completion, str(task.answer))
        words = len(rollout.completion.split())
        reward = correct * (1.0 if words <= self.params.max_words else 1.0 - self.params.penalty)
        return reward, {"correct": correct, "words": words, "extracted": details["extracted"]}


class AsyncLength(Verifier):
    """An async verifier: reward 1 for answers of at most max_chars characters."""

    class Params(BaseModel):
        max_chars: int = 100

    async def verify(self, task, rollout):
        await asyncio.sleep(0)
        return float(len(rollout.completion) <= self.params.max_chars)
'''


def rollgen(*args: str, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "rollgen", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=300, env=env)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A training repo: my_rewards.py and my_conf/verifier/*.yaml."""
    root = tmp_path / "repo"
    (root / "my_conf" / "verifier").mkdir(parents=True)
    (root / "my_rewards.py").write_text(textwrap.dedent(MODULE))
    (root / "my_conf" / "verifier" / "my_reward.yaml").write_text(
        "_target_: my_rewards.ConciseCorrect\nmax_words: 5\npenalty: 0.25\n")
    (root / "my_conf" / "verifier" / "short.yaml").write_text("_target_: my_rewards.AsyncLength\nmax_chars: 30\n")
    (root / "my_conf" / "verifier" / "typo.yaml").write_text("_target_: my_rewards.ConciseCorect\n")
    return root


def test_user_verifier_runs_end_to_end(repo: Path, tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 8)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=5)) as url:
        p = rollgen("--config-dir", "my_conf", "verifier=my_reward", "policy=openai", f"policy.base_url={url}",
                    f"server.data_path={tasks}", "reuse_rollouts=false", "hydra.run.dir=run", cwd=repo,
                    pythonpath=repo)
        assert p.returncode == 0, p.stderr
        q = rollgen("--config-dir", "my_conf", "verifier=short", "policy=openai", f"policy.base_url={url}",
                    f"server.data_path={tasks}", "reuse_rollouts=false", "hydra.run.dir=run2", cwd=repo,
                    pythonpath=repo)
        assert q.returncode == 0, q.stderr
    saved = json.loads((repo / "run" / "run_config.json").read_text())
    assert saved["verifier"] == {"_target_": "my_rewards.ConciseCorrect", "max_words": 5, "penalty": 0.25}
    rows = [json.loads(x) for x in (repo / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["status"] == "ok" and r["verifier"] == "concise_correct" for r in rows)
    for r in rows:  # the fake says "Let me compute. The answer is \boxed{7}." (7 words) or "I think it is \boxed{8}."
        d = r["reward_details"]
        assert d["words"] == len(r["completion"].split())
        assert r["reward"] == (0.75 if d["correct"] else 0.0)
    assert {r["reward"] for r in rows} == {0.0, 0.75}
    short = [json.loads(x) for x in (repo / "run2" / "rollouts.jsonl").read_text().splitlines()]
    assert {r["verifier"] for r in short} == {"AsyncLength"}
    assert all(r["reward"] == float(len(r["completion"]) <= 30) for r in short)


@pytest.mark.parametrize(("args", "expected"), [
    (["verifier=typo"], "rollgen: config error: verifier._target_: module 'my_rewards' has no attribute 'ConciseCorect'"),
    (["verifier=my_reward", "verifier.max_words=0"], "rollgen: config error: verifier.max_words: Input should be greater than or equal to 1"),
    (["verifier=my_reward", "+verifier.max_wrds=3"], "rollgen: config error: verifier.max_wrds: unknown key"),
    (["verifier=my_reward", "verifier._target_=my_rewardz.ConciseCorrect"], "rollgen: config error: verifier._target_: cannot import module 'my_rewardz'"),
])
def test_wrong_target_or_bad_param_fails_naming_the_key(repo: Path, args: list[str], expected: str) -> None:
    p = rollgen("--config-dir", "my_conf", *args, "policy=openai", cwd=repo, pythonpath=repo)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), p.stderr
    assert not (repo / "outputs").exists()


def test_user_verifier_in_validate_and_verify(repo: Path, tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 6)
    p = rollgen("validate", "--config-dir", "my_conf", "verifier=my_reward", f"server.data_path={tasks}",
                "--out", "val", cwd=repo, pythonpath=repo)
    assert p.returncode == 1, p.stderr  # wordy renderings lose 0.25: false negatives, named in the report
    report = json.loads((repo / "val" / "report.json").read_text())
    assert report["kinds"]["reasoning"]["rate"] == 1.0 and report["kinds"]["boxed"]["rate"] == 0.0
    assert report["false_positive_rate"] == 0.0
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=5)) as url:
        assert rollgen("policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "reuse_rollouts=false",
                       "hydra.run.dir=run", cwd=repo, pythonpath=repo).returncode == 0
    v = rollgen("verify", "run", "--config-dir", "my_conf", "verifier=my_reward", cwd=repo, pythonpath=repo)
    assert v.returncode == 0, v.stderr
    new = [json.loads(x) for x in (repo / "run" / "rollouts.reverified.jsonl").read_text().splitlines()]
    assert {r["verifier"] for r in new} == {"concise_correct"}
