"""The rollout unit: one task → policy ↔ tools → verify → a Rollout. A bad sample is a row with a status; a bug
in rollgen's own code stops the run with a pointer to where it was raised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import rollgen
from rollgen.config import SamplerConfig
from rollgen.integrations.reward import AsyncRewardScorer, RewardScorer
from rollgen.policy import Endpoint
from rollgen.policy.client import PolicyClient
from rollgen.records import Rollout, Task
from rollgen.servers import ResourceServer
from rollgen.unit import RolloutUnit, rollgen_bug, score
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import answers
from rollgen.verifiers.math import MathVerifier
from tests.conftest import serve_in_thread, started, write_arith_tasks
from tests.fakes import FakeOpenAI
from tests.test_tools import CALCULATOR

TASK = Task(id="t", prompt="Calculate 3 + 4.", answer="7")


def _rollout(completion: str = "The answer is \\boxed{7}.") -> Rollout:
    return Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=completion, status="ok")


class Picky(Verifier):
    """A user's verifier with a bug of its own: a KeyError, a TypeError, or a reward that is not one."""

    class Params(BaseModel):
        fail: str = "key"

    def verify(self, task: Task, rollout: Rollout) -> Any:
        if self.params.fail == "key":
            return {"a": 1}["b"]
        if self.params.fail == "type":
            return len(None)  # type: ignore[arg-type]
        return "high"


@pytest.mark.parametrize(("fail", "expected"), [
    ("key", "KeyError: 'b' (raised in Picky.verify, test_unit.py:"),
    ("type", "TypeError: object of type 'NoneType' has no len() (raised in Picky.verify, test_unit.py:"),
    ("verdict", "BadVerdict: verifier Picky returned str; return a Verdict"),
])
def test_a_users_verifier_raising_anything_is_a_verifier_error_naming_its_class(fail: str, expected: str) -> None:
    rollout = asyncio.run(score(Picky(Picky.Params(fail=fail)), TASK, _rollout()))
    assert rollout.status == "verifier_error" and rollout.reward is None
    assert rollout.error is not None and rollout.error.startswith(expected), rollout.error


def test_a_bug_in_rollgens_own_code_raises_with_a_pointer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "SOLUTION_CHARS", None)  # rollgen's own code now compares int > None

    async def main() -> Rollout:
        v = MathVerifier(MathVerifier.Params())
        async with started(v):
            return await score(v, TASK, _rollout())

    with pytest.raises(TypeError) as e:
        asyncio.run(main())
    assert rollgen_bug(e.value)
    note = "\n".join(getattr(e.value, "__notes__", []))
    assert "rollgen bug: TypeError raised at" in note and "verifiers/extract/answers.py:" in note
    assert "rollout 't#0'" in note


def test_a_verifier_error_in_rollgens_verifier_is_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """rollgen's own verifiers raise on purpose for a sample they cannot score (a ValueError here): a row."""
    async def main() -> Rollout:
        v = MathVerifier(MathVerifier.Params())
        async with started(v):
            return await score(v, Task(id="t", prompt="q", answer=None), _rollout())

    rollout = asyncio.run(main())
    assert rollout.status == "verifier_error" and rollout.error == "ValueError: the task has no ground-truth 'answer'"


def test_a_rollgen_bug_stops_the_run_instead_of_filling_it_with_error_rows(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "SOLUTION_CHARS", None)
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 6)
    with serve_in_thread(FakeOpenAI()) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                               "progress=false"], output_dir=str(tmp_path / "run"))
        with pytest.raises(TypeError) as e:
            rollgen.run(cfg)
    assert any("rollgen bug" in n for n in e.value.__notes__)
    rows = [json.loads(x) for x in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert not any(r["status"] == "verifier_error" for r in rows)
    assert not (tmp_path / "run" / ".rollgen.lock").exists()  # the run dir was let go


class BrokenTool(ResourceServer):
    """A server whose one tool raises: the error goes back to the model as the tool's result."""

    class Params(BaseModel):
        pass

    def __init__(self) -> None:
        super().__init__(self.Params())

    def tasks(self, skipped: list[str] | None = None) -> Iterator[Task]:
        return iter(())

    def tools(self) -> list[dict[str, Any]]:
        return [CALCULATOR]

    async def call_tool(self, name: str, arguments: dict[str, Any], task: Task) -> str:
        raise ValueError(f"cannot evaluate {arguments['expression']!r}")


def test_the_unit_runs_one_rollout_and_a_tools_error_goes_back_to_the_model() -> None:
    with serve_in_thread(FakeOpenAI()) as url:
        async def main() -> Rollout:
            v = MathVerifier(MathVerifier.Params())
            async with started(v) as rt:
                sampler = SamplerConfig(max_turns=3)
                server = BrokenTool()
                client = PolicyClient(rt.session, Endpoint(url, "m"), sampler.responses_create_params, server.tools())
                unit = RolloutUnit(server=server, verifier=v, client=client, sampler=sampler, config_hash="h")
                return await unit.run(TASK, 0)

        rollout = asyncio.run(main())
    assert [m["role"] for m in rollout.messages] == ["user", "assistant", "tool", "assistant"]
    assert rollout.messages[2]["content"] == "error: ValueError: cannot evaluate '3 + 4'"
    assert rollout.turns == 2 and rollout.id == "t#0" and rollout.config_hash == "h"
    assert rollout.status == "ok" and rollout.reward == 0.0  # the model answered with the error, not 7


def test_a_failed_request_is_a_row_with_a_status() -> None:
    with serve_in_thread(FakeOpenAI(error_rate=1.0)) as url:
        async def main() -> Rollout:
            v = MathVerifier(MathVerifier.Params())
            async with started(v) as rt:
                sampler = SamplerConfig()
                endpoint = Endpoint(url, "m", max_retries=0)
                client = PolicyClient(rt.session, endpoint, sampler.responses_create_params)
                return await RolloutUnit(server=BrokenTool(), verifier=v, client=client, sampler=sampler).run(TASK, 1)

        rollout = asyncio.run(main())
    assert rollout.status == "error" and "HTTP 500" in (rollout.error or "") and rollout.reward is None
    assert rollout.id == "t#1" and rollout.turns == 0


# ---------------------------------------------------------------- the reward scorer: async first, sync shim


ITEMS = [("The answer is \\boxed{7}.", "7", "Calculate 3 + 4.", "stop"),
         ("\\boxed{7} or maybe \\boxed{8}", "7", "Calculate 3 + 4.", "stop"),
         ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\sqrt{2}/2", "Simplify.", "stop"),
         ("no idea", "7", None, "length")]


def test_the_async_scorer_runs_in_the_callers_loop_and_the_shim_agrees() -> None:
    scorer = AsyncRewardScorer.from_server("math")  # composes rollgen's config (reads YAML): before the loop

    async def main() -> list[tuple[float | None, dict[str, Any]]]:
        async with scorer:
            return await scorer.score_many(ITEMS)

    got = asyncio.run(main())
    assert [r for r, _ in got] == [1.0, 0.0, 1.0, 0.0]
    assert got[1][1]["verifier"] == "guards" and got[3][1]["guards"] == ["truncated"]
    shim = RewardScorer.from_server("math")
    try:
        assert shim.score_many(ITEMS) == got
    finally:
        shim.close()


def test_a_reward_that_cannot_be_verified_is_none_with_the_error() -> None:
    scorer = RewardScorer({"_target_": "tests.test_unit.Picky", "fail": "key"}, {"enabled": False})
    try:
        reward, details = scorer.score("\\boxed{7}", "7")
    finally:
        scorer.close()
    assert reward is None and details["verifier_error"].startswith("KeyError: 'b' (raised in Picky.verify")
