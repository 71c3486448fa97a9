"""``server=code``: Python tasks with tests, run against the fake endpoint and scored in the real sandbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import rollgen
from rollgen.build import build, build_verifier
from rollgen.records import Rollout
from rollgen.rundir import read_jsonl
from rollgen.servers.code import CodeServer
from rollgen.servers.taskfile import TaskFileError, TaskFileServer
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI

RIGHT = "Here is my solution.\n\n```python\ndef add(a, b):\n    return a + b\n```"
WRONG = "```python\ndef is_palindrome(s):\n    return s[::-1]\n```"  # the reversed string, not a bool: no test passes


def _tasks(*overrides: str) -> list:
    return list(build(rollgen.compose(["server=code", *overrides], output_dir="x").server).tasks())


def test_the_built_in_tasks_have_tests_a_solution_and_the_instruction() -> None:
    tasks = _tasks()
    assert issubclass(CodeServer, TaskFileServer) and len(tasks) == 5 and len({t.id for t in tasks}) == 5
    for task in tasks:
        assert task.metadata["tests"] and task.metadata["solution"] and task.answer is None
        assert task.messages[-1]["content"].endswith("Write your answer in Python, in one ```python code block.")


def test_every_reference_solution_scores_1_and_a_stub_0() -> None:
    cfg = rollgen.compose(["server=code"], output_dir="x")
    verifier = build_verifier(cfg.verifier, cfg.guards)

    async def score(task, text: str) -> float:
        rollout = Rollout(id=f"{task.id}#0", task_id=task.id, repeat=0, messages=[], completion=text, status="ok")
        return (await verifier.verify(task, rollout)).reward

    async def main() -> list[tuple[float, float]]:
        try:
            return [(await score(t, f"```python\n{t.metadata['solution']}```"), await score(t, "```python\npass\n```"))
                    for t in build(cfg.server).tasks()]
        finally:
            await verifier.close()

    assert asyncio.run(main()) == [(1.0, 0.0)] * 5


def test_a_user_task_file_and_its_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "sq", "question": "Write `square(x)`.", "test_list": ["assert square(3) == 9"]},
            {"id": "cube", "question": "Write `cube(x)`."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = rollgen.compose(["server=code", f"server.data_path={path}", "server.fields={tests: test_list}"], output_dir="x")
    server = build(cfg.server)
    server.on_bad_row = "skip"
    tasks = list(server.tasks())
    assert [t.id for t in tasks] == ["sq"] and tasks[0].metadata["tests"] == ["assert square(3) == 9"]
    assert server.bad_rows == [f"{path}:2: no column 'test_list' (server.fields maps to it); the keys are ['id', 'question']"]
    with pytest.raises(TaskFileError, match=r"mine\.jsonl:1: task 'sq' has no tests"):
        _tasks(f"server.data_path={path}")


def test_a_run_scores_right_code_1_and_wrong_code_0_in_the_sandbox(tmp_path: Path) -> None:
    fake = FakeOpenAI(replies={"def add(a, b)": RIGHT, "is_palindrome(s)": WRONG})
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=code", "policy=openai", f"policy.base_url={url}", "progress=false",
                               "format.validation_fraction=0"], output_dir=str(out))
        report = rollgen.run(cfg)
    rows = {r["task_id"]: r for r in read_jsonl(out / "rollouts.jsonl")}
    assert len(rows) == 5 and fake.requests == 5 and all(r["status"] == "ok" for r in rows.values())
    right, wrong = rows["code-add"], rows["code-palindrome"]
    assert right["reward"] == 1.0 and right["verifier"] == "code" and right["reward_details"]["passed"] == 3
    assert wrong["reward"] == 0.0 and wrong["verifier"] == "code" and wrong["reward_details"]["passed"] == 0
    assert wrong["reward_details"]["isolation"] == "namespaces"
    assert all(r["reward"] == 0.0 for k, r in rows.items() if k not in ("code-add",))  # "I do not know." is no code
    dataset = list(read_jsonl(out / "dataset" / "train.jsonl"))  # sampler=sft keeps reward >= 0.8
    assert [d["messages"][-1]["content"] for d in dataset] == [RIGHT] and report["kept"]["dataset_rows"] == 1
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["verifier"]["_target_"].endswith("CodeTests") and saved["guards"]["hedging"] is False
