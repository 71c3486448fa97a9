"""``server=code``: Python tasks with tests (rollgen's own and HumanEval), run against the fake endpoint and
scored in the real sandbox."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

import rollgen
from rollgen.build import build, build_verifier
from rollgen.commands.validate import main as validate
from rollgen.errors import ConfigError
from rollgen.records import Rollout, Task
from rollgen.rundir import read_jsonl
from rollgen.servers.code import CodeServer
from rollgen.servers.taskfile import TaskFileError, TaskFileServer
from tests.conftest import serve_in_thread, started
from tests.fakes import FakeOpenAI

RIGHT = "Here is my solution.\n\n```python\ndef add(a, b):\n    return a + b\n```"
WRONG = "```python\ndef is_palindrome(s):\n    return s[::-1]\n```"  # the reversed string, not a bool: no test passes
INSTRUCTION = "Write your answer in Python, in one ```python code block."


def _tasks(*overrides: str) -> list[Task]:
    return list(build(rollgen.compose(["server=code", *overrides], output_dir="x").server).tasks())


def _scores(tasks: list[Task], completions: list[str]) -> list[float]:
    cfg = rollgen.compose(["server=code"], output_dir="x")
    verifier = build_verifier(cfg.verifier, cfg.guards)

    async def score(task: Task, text: str) -> float:
        rollout = Rollout(id=f"{task.id}#0", task_id=task.id, repeat=0, messages=[], completion=text, status="ok")
        return (await verifier.verify(task, rollout)).reward

    async def main() -> list[float]:
        async with started(verifier):
            return list(await asyncio.gather(*(score(t, c) for t, c in zip(tasks, completions))))

    return asyncio.run(main())


def test_the_bundled_sets_rollgens_own_and_humaneval() -> None:
    tasks = _tasks()
    assert issubclass(CodeServer, TaskFileServer) and len(tasks) == 40 + 164 and len({t.id for t in tasks}) == 204
    for task in tasks:
        assert task.metadata["tests"] and task.metadata["solution"] and task.answer is None
        assert task.messages[-1]["content"].endswith(INSTRUCTION)
    own = [t for t in tasks if t.metadata["source_dataset"] == "rollgen-code"]
    assert len(own) == 40 and Counter(t.metadata["difficulty"] for t in own).keys() == {"easy", "medium", "hard"}
    assert len({t.metadata["topic"] for t in own}) >= 8
    stdio = [t for t in own if isinstance(t.metadata["tests"][0], dict)]
    assert len(stdio) >= 10 and all(c["output"].strip() for t in stdio for c in t.metadata["tests"])
    he = [t for t in tasks if t.metadata["source_dataset"] == "openai_humaneval"]
    assert [t.id for t in he[:2]] == ["humaneval-0", "humaneval-1"] and he[0].metadata["source_id"] == "HumanEval/0"
    assert "def has_close_elements(numbers: List[float], threshold: float) -> bool:" in he[0].messages[-1]["content"]
    assert he[0].metadata["tests"][0].endswith("check(has_close_elements)\n")
    assert [t.id for t in _tasks("server.sets=[humaneval]")] == [t.id for t in he]


def test_an_unknown_set_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"server\.sets"):
        rollgen.compose(["server=code", "server.sets=[mbpp]"], output_dir="x")


def test_every_reference_solution_passes_in_the_sandbox_and_a_stub_fails() -> None:
    tasks = _tasks()
    rewards = _scores(tasks + tasks, [f"```python\n{t.metadata['solution']}```" for t in tasks]
                      + ["```python\ndef solve(*args):\n    pass\n```"] * len(tasks))
    failed = [t.id for t, r in zip(tasks, rewards) if r != 1.0]
    assert failed == [] and rewards[len(tasks):] == [0.0] * len(tasks)


def test_a_fence_the_model_never_closed_still_holds_its_code() -> None:
    """SmolLM2 (policy=local) ends replies as "```python\ndef add(a, b):\n    return a + b" with no closing fence."""
    add = next(t for t in _tasks("server.sets=[rollgen]") if t.id == "code-add")
    assert _scores([add, add], ["```python\ndef add(a, b):\n    return a + b",
                                "```python\nadd = max\n```\nOr better:\n```python\ndef add(a, b):\n    return a + b\n"]) == [1.0, 1.0]


def test_deliberately_wrong_solutions_score_below_1() -> None:
    by_id = {t.id: t for t in _tasks()}
    wrong = {  # plausible mistakes: each passes some tests, or none
        "code-palindrome": "def is_palindrome(s):\n    return s == s[::-1]\n",  # case and punctuation kept
        "code-sum-stdin": "import math\nprint(math.prod(int(x) for x in input().split()))\n",
        "code-merge-intervals": "def merge_intervals(intervals):\n    return sorted(intervals)\n",
        "humaneval-0": by_id["humaneval-0"].metadata["solution"].replace("distance < threshold", "distance > threshold"),
        "humaneval-2": "def truncate_number(number: float) -> float:\n    return number // 1\n",
    }
    rewards = _scores([by_id[k] for k in wrong], [f"```python\n{code}```" for code in wrong.values()])
    # partial credit on rollgen's tasks (1 2 3 multiplies to its sum; 10 is its own product); HumanEval tasks
    # score as the benchmark does: every assert or nothing
    assert rewards == [0.5, 2 / 3, 0.4, 0.0, 0.0]


def test_a_user_task_file_and_its_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "sq", "question": "Write `square(x)`.", "test_list": ["assert square(3) == 9"]},
            {"id": "cube", "question": "Write `cube(x)`."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = rollgen.compose(["server=code", f"server.data_path={path}", "server.fields={tests: test_list}"], output_dir="x")
    skipped: list[str] = []
    server = build(cfg.server)
    tasks = list(server.tasks(skipped))
    assert [t.id for t in tasks] == ["sq"] and tasks[0].metadata["tests"] == ["assert square(3) == 9"]
    assert skipped == [f"{path}:2: no column 'test_list' (server.fields maps to it); the keys are ['id', 'question']"]
    with pytest.raises(TaskFileError, match=r"mine\.jsonl:1: task 'sq' has no tests"):
        _tasks(f"server.data_path={path}")
    assert "sets" not in server.fingerprint() and build(rollgen.compose(
        ["server=code"], output_dir="x").server).fingerprint()["tasks_sha256"].keys() == {"rollgen", "humaneval"}


def test_validate_passes_on_the_code_tasks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "v"
    assert validate(["server=code", "server.sets=[rollgen]", "limit=8", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    kinds = report["kinds"]
    assert report["tasks"] == 8 and kinds["reference_fenced"]["cases"] == 8 and kinds["reference_fenced"]["failures"] == 0
    assert kinds["stub"]["failures"] == 0 and kinds["other_task"]["failures"] == 0 and kinds["forged_results"]["cases"] == 8
    assert "PASS" in capsys.readouterr().out


def test_a_run_scores_right_code_1_and_wrong_code_0_in_the_sandbox(tmp_path: Path) -> None:
    fake = FakeOpenAI(replies={"def add(a, b)": RIGHT, "is_palindrome(s)": WRONG})
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=code", "server.sets=[rollgen]", "limit=5", "policy=openai",
                               f"policy.base_url={url}", "progress=false", "format.validation_fraction=0"],
                              output_dir=str(out))
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


def test_a_dpo_run_on_humaneval_pairs_the_reference_with_a_stub(tmp_path: Path) -> None:
    tasks = _tasks("server.sets=[humaneval]", )[:6]
    pairs = {t.metadata["entry_point"] + "(": (f"```python\n{t.metadata['solution']}```",
                                               "```python\ndef nothing():\n    return None\n```") for t in tasks}
    fake = FakeOpenAI(pairs=pairs, alternate=True)
    out = tmp_path / "dpo"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=code", "server.sets=[humaneval]", "limit=6", "sampler=dpo", "policy=openai",
                               f"policy.base_url={url}", "progress=false", "format.validation_fraction=0"],
                              output_dir=str(out))
        rollgen.run(cfg)
    rewards = Counter(r["reward"] for r in read_jsonl(out / "rollouts.jsonl"))
    assert rewards == {1.0: 6, 0.0: 6}
    dataset = list(read_jsonl(out / "dataset" / "train.jsonl"))
    assert len(dataset) == 6 and all("return None" in d["rejected"][-1]["content"] for d in dataset)
