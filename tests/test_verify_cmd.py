"""``rollgen verify RUN_DIR``: re-verify collected rollouts with another verifier config, no model calls;
new rewards next to the old ones, a diff, and --replace that keeps the originals."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

import rollgen
from rollgen.commands.verify import main
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


class FailsOnOdd(Verifier):
    """Raises for tasks with an odd index: a verifier with a bug."""

    class Params(BaseModel):
        pass

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        if int(task.id[1:]) % 2:
            raise KeyError("boom")
        return Verdict(reward=1.0, verifier="fails_on_odd")


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 16)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=2)) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                               "progress=false", "reuse_rollouts=false"], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    return tmp_path / "run"  # the fake is gone: any model call from here on would fail


def test_same_verifier_changes_nothing(run: Path) -> None:
    before = sha(run / "rollouts.jsonl")
    assert main([str(run)]) == 0
    s = json.loads((run / "reverify.json").read_text())
    assert s["rollouts"] == s["rescored"] == 16 and s["changed"] == 0
    assert s["mean_reward_before"] == s["mean_reward_after"]
    assert sha(run / "rollouts.jsonl") == before
    assert (run / "reverify_diff.jsonl").read_text() == ""


def test_another_verifier_writes_new_rewards_next_to_the_old(run: Path, capsys: pytest.CaptureFixture) -> None:
    before = sha(run / "rollouts.jsonl")
    old = rows(run / "rollouts.jsonl")
    wrong = sum(r["reward"] == 0.0 for r in old)
    assert 0 < wrong < 16
    assert main([str(run), "verifier=weighted", "verifier.weights=[0.5,0.5]", "verifier.gate=null"]) == 0
    assert sha(run / "rollouts.jsonl") == before  # the original is untouched
    new = rows(run / "rollouts.reverified.jsonl")
    assert [r["id"] for r in new] == [r["id"] for r in old]
    for r in new:
        Rollout.model_validate(r)  # valid rollout rows, readable by later stages
    assert sorted({r["reward"] for r in new}) == [0.5, 1.0] and all(r["verifier"] == "weighted" for r in new)
    s = json.loads((run / "reverify.json").read_text())
    assert s["changed"] == s["reward_up"] == wrong and s["reward_down"] == 0
    assert s["transitions"] == {"0 -> partial": wrong}
    assert s["mean_reward_after"] > s["mean_reward_before"]
    diff = rows(run / "reverify_diff.jsonl")
    assert len(diff) == wrong and diff[0]["before"]["reward"] == 0.0 and diff[0]["after"]["reward"] == 0.5
    assert f"{wrong} changed" in capsys.readouterr().out
    assert "**" + str(wrong) + " changed**" in (run / "reverify.md").read_text()


def test_replace_keeps_the_first_originals(run: Path) -> None:
    original = (run / "rollouts.jsonl").read_bytes()
    assert main([str(run), "guards.max_chars=10", "--replace"]) == 0  # every completion is now "too long"
    assert (run / "rollouts.original.jsonl").read_bytes() == original
    assert {r["reward"] for r in rows(run / "rollouts.jsonl")} == {0.0}
    assert json.loads((run / "run_config.json").read_text())["guards"]["max_chars"] == 10
    assert json.loads((run / "run_config.original.json").read_text())["guards"]["max_chars"] == 32000
    assert main([str(run), "guards.max_chars=32000", "--replace"]) == 0
    assert (run / "rollouts.original.jsonl").read_bytes() == original  # not overwritten by the second replace
    assert [r["reward"] for r in rows(run / "rollouts.jsonl")] == [json.loads(x)["reward"] for x in original.splitlines()]


def test_verifier_errors_become_a_status_and_can_be_recovered(run: Path, tmp_path: Path) -> None:
    conf = tmp_path / "conf" / "verifier"
    conf.mkdir(parents=True)
    (conf / "buggy.yaml").write_text("_target_: tests.test_verify_cmd.FailsOnOdd\n")
    assert main([str(run), "verifier=buggy", "--config-dir", str(tmp_path / "conf"), "--replace"]) == 0
    got = rows(run / "rollouts.jsonl")
    odd = [r for r in got if int(r["task_id"][1:]) % 2]
    assert len(odd) == 8 and all(r["status"] == "verifier_error" and r["reward"] is None for r in odd)
    assert all("KeyError" in r["error"] for r in odd)
    s = json.loads((run / "reverify.json").read_text())
    assert s["became_verifier_error"] == 8
    assert main([str(run), "verifier=math", "--replace"]) == 0
    s = json.loads((run / "reverify.json").read_text())
    assert s["recovered_from_verifier_error"] == 8
    assert all(r["status"] == "ok" and r["error"] is None for r in rows(run / "rollouts.jsonl"))


def test_failed_requests_are_not_rescored(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 10)
    with serve_in_thread(FakeOpenAI(error_rate=0.5, seed=4)) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", "policy.max_retries=0",
                               f"server.data_path={tasks}", "progress=false", "reuse_rollouts=false"],
                              output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    run = tmp_path / "run"
    failed = sum(r["status"] == "error" for r in rows(run / "rollouts.jsonl"))
    assert failed > 0
    assert main([str(run), "verifier=exact"]) == 0
    s = json.loads((run / "reverify.json").read_text())
    assert s["not_rescored"] == failed and s["rescored"] == 10 - failed
    assert [r["status"] for r in rows(run / "rollouts.reverified.jsonl")] == [r["status"] for r in rows(run / "rollouts.jsonl")]


def test_errors_name_the_key(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(run), "verifier.timeout_s=-1"]) == 2
    assert "verifier.timeout_s" in capsys.readouterr().err
    assert main([str(run), "+verifier.nope=1"]) == 2
    assert "verifier.nope: unknown key" in capsys.readouterr().err
    assert main([str(run), "verifier=nope"]) == 2
    assert "verifier=nope: no such option" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert not (run / "rollouts.reverified.jsonl").exists()


def test_not_while_another_process_holds_the_run_dir(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rollgen.commands.curate import main as curate
    from rollgen.rundir import RunDirLock

    before = sha(run / "rollouts.jsonl")
    with RunDirLock(run):  # as a run collecting into it would
        assert main([str(run), "verifier=exact", "--replace"]) == 2
        assert curate([str(run), "quality.min_reward_threshold=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.count(f"is in use by another rollgen process (pid {os.getpid()})") == 2
    assert sha(run / "rollouts.jsonl") == before and not (run / "reverify.json").exists()
    assert main([str(run)]) == 0  # free again
