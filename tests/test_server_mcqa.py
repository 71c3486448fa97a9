"""``server=mcqa``: multiple-choice questions (bundled or a user's file), letter extraction however a reply
writes it, hedges, options shuffled per repeat, and a run against the fake endpoint."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rollgen
from rollgen.build import build, build_verifier
from rollgen.commands.validate import main as validate
from rollgen.records import Rollout, Task
from rollgen.rundir import read_jsonl
from rollgen.servers.mcqa import McqaServer
from rollgen.servers.taskfile import TaskFileError
from rollgen.verifiers import verify
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI

OPTIONS = ["London", "Paris", "Berlin", "Madrid"]


def _server(*overrides: str) -> McqaServer:
    return build(rollgen.compose(["server=mcqa", *overrides], output_dir="x").server)


@functools.cache
def _verifier() -> object:
    cfg = rollgen.compose(["server=mcqa"], output_dir="x")
    return build_verifier(cfg.verifier, cfg.guards)


def _score(task: Task, completion: str, messages: list | None = None, repeat: int = 0) -> float:
    verifier = _verifier()
    rollout = Rollout(id=f"{task.id}#{repeat}", task_id=task.id, repeat=repeat, completion=completion, status="ok",
                      messages=messages if messages is not None else [*task.chat(), {"role": "assistant",
                                                                                       "content": completion}])
    return asyncio.run(verify(verifier, task, rollout)).reward


def _capital_task(tmp_path: Path, **row: object) -> Task:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "cap", "question": "What is the capital of France?", "options": OPTIONS,
                                "answer": "B", **row}) + "\n")
    return next(McqaServer(McqaServer.Params(data_path=str(path))).tasks())  # the preset's defaults


def test_the_bundled_questions() -> None:
    tasks = list(_server().tasks())
    assert len(tasks) == 50 and len({t.id for t in tasks}) == 50
    assert len({t.metadata["subject"] for t in tasks}) == 14
    assert set(Counter(t.answer for t in tasks)) == {"A", "B", "C", "D", "E"}  # the gold is not always one letter
    first = tasks[0].messages[-1]["content"]
    assert first.splitlines()[2:] == ["A) Mitochondrion", "B) Ribosome", "C) Golgi apparatus", "D) Lysosome",
                                      'Answer with the letter of the correct option, as "Answer: X".']
    assert tasks[0].answer == "A" and tasks[0].metadata["options"][0] == "Mitochondrion"
    physics = list(_server("server.subjects=[physics]").tasks())
    assert len(physics) == 5 and {t.metadata["subject"] for t in physics} == {"physics"}
    with pytest.raises(ValueError, match=r"subjects: no bundled tasks with subject 'alchemy'; the subjects are art, "):
        _server("server.subjects=[alchemy]").check()


@pytest.mark.parametrize(("completion", "reward"), [
    ("(B)", 1.0), ("Answer: B", 1.0), ("**B**", 1.0), ("B) Paris", 1.0), ("The answer is B.", 1.0),
    ("the answer is b", 1.0), ("answer: (b)", 1.0), ("Paris", 1.0), ("The answer is Paris.", 1.0),
    ("\\boxed{\\text{B}}", 1.0), ("**Answer:** B", 1.0), ("I would choose B.", 1.0), ("Option B is correct.", 1.0),
    ("Berlin is in Germany, London in England.\n\nFinal answer: B) Paris", 1.0), ("<think>A? no.</think>B", 1.0),
    ("Answer: I think it is B", 1.0), ("B) Paris is the capital of France.", 1.0),
    ("Answer: C", 0.0), ("(A)", 0.0), ("The answer is London.", 0.0), ("no idea", 0.0), ("", 0.0),
])
def test_letter_extraction(tmp_path: Path, completion: str, reward: float) -> None:
    assert _score(_capital_task(tmp_path), completion) == reward, completion


@pytest.mark.parametrize("hedge", ["A or B", "The answer is B or C.", "Answer: B/C", "B, D", "either B or A",
                                   "Answer: A or maybe B", "B) London", "A B C D", "(A) no, (B) yes",
                                   "A) London\nB) Paris\nC) Berlin\nD) Madrid"])
def test_hedges_score_0(tmp_path: Path, hedge: str) -> None:
    assert _score(_capital_task(tmp_path), hedge) == 0.0, hedge


@pytest.mark.parametrize("gold", [1, "B", "(B)", "Paris", "paris"])
def test_the_gold_as_letter_index_or_text(tmp_path: Path, gold: object) -> None:
    task = _capital_task(tmp_path, answer=gold)
    assert task.answer == "B" and _score(task, "Answer: B") == 1.0


def test_user_files_in_the_shapes_datasets_use(tmp_path: Path) -> None:
    mmlu = tmp_path / "mmlu.jsonl"  # MMLU: choices list, 0-based answer
    mmlu.write_text(json.dumps({"question": "2 + 2 = ?", "subject": "math", "choices": ["3", "4", "5", "6"],
                                "answer": 1}) + "\n")
    [t] = _server(f"server.data_path={mmlu}").tasks()
    assert t.id == "mmlu-1" and t.answer == "B" and t.metadata["options"] == ["3", "4", "5", "6"]
    assert "choices" not in t.metadata and t.messages[-1]["content"].startswith("2 + 2 = ?\n\nA) 3\nB) 4\n")
    arc = tmp_path / "arc.parquet"  # ARC: {text, label} choices, answerKey a label
    pq.write_table(pa.Table.from_pylist([{"id": "arc1", "question": "Which is a mammal?", "answerKey": "3",
                                          "choices": {"text": ["Shark", "Frog", "Whale"], "label": ["1", "2", "3"]}}]), arc)
    [t] = _server(f"server.data_path={arc}", "server.fields={answer: answerKey}").tasks()
    assert t.answer == "C" and _score(t, "Answer: C") == 1.0 and _score(t, "Whale") == 1.0
    cols = tmp_path / "cols.json"  # one column per letter, as CSV exports have
    cols.write_text(json.dumps([{"prompt": "Pick the vowel.", "A": "b", "B": "e", "C": "k", "target": "B"}]))
    [t] = _server(f"server.data_path={cols}", "server.fields={answer: target}").tasks()
    assert t.metadata["options"] == ["b", "e", "k"] and t.answer == "B" and "A" not in t.metadata


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    rows = [{"question": "ok?", "options": ["yes", "no"], "answer": "A"}, {"question": "no options", "answer": "A"},
            {"question": "gold?", "options": ["x", "y"], "answer": "Z"}, {"question": "one", "options": ["x"], "answer": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = _server(f"server.data_path={path}")
    skipped: list[str] = []
    assert [t.id for t in server.tasks(skipped)] == ["bad-1"]
    assert skipped == [
        f"{path}:2: no options: give 'options' (or 'choices') as a list, or columns A, B, C, ... (server.fields maps "
        "your column names)",
        f"{path}:3: the gold answer 'Z' is not a choice letter, index or listed option",
        f"{path}:4: task 'bad-4': 1 options; give 2 to 10 non-empty ones"]
    with pytest.raises(TaskFileError, match=r"bad\.jsonl:2: no options"):
        list(_server(f"server.data_path={path}").tasks())


def test_shuffled_choices_per_repeat_follow_the_gold() -> None:
    plain, shuffled = _server(), _server("server.shuffle_choices=true", "server.seed=7")
    task = next(plain.tasks())
    assert plain.for_repeat(task, 3) is task and "choice_seed" not in task.metadata
    base = next(shuffled.tasks())
    repeats = [shuffled.for_repeat(base, r) for r in range(8)]
    assert [r.messages for r in repeats] == [shuffled.for_repeat(base, r).messages for r in range(8)]  # deterministic
    assert len({tuple(r.metadata["options"]) for r in repeats}) > 3
    for r in repeats:  # the gold letter moved with its option, and the prompt shows that order
        gold = r.metadata["options"][ord(r.answer) - ord("A")]
        assert gold == "Mitochondrion" and f"{r.answer}) Mitochondrion" in r.messages[-1]["content"]
    assert [r.answer for r in repeats] != [repeats[0].answer] * 8
    seed0 = _server("server.shuffle_choices=true")  # another seed, other orders
    other = next(seed0.tasks())
    assert [r.metadata["options"] for r in repeats] != [seed0.for_repeat(other, i).metadata["options"] for i in range(8)]


def test_a_shuffled_rollout_is_scored_in_the_order_it_was_shown() -> None:
    server = _server("server.shuffle_choices=true")
    base = next(server.tasks())
    for repeat in range(6):
        shown = server.for_repeat(base, repeat)
        wrong = next(x for x in "ABCD" if x != shown.answer)
        for task in (shown, base):  # the task the run used, and the stored task `rollgen verify` reads
            for letter, reward in ((shown.answer, 1.0), (wrong, 0.0)):
                reply = f"Answer: {letter}"
                assert _score(task, reply, [*shown.chat(), {"role": "assistant", "content": reply}], repeat) == reward


def test_validate_passes_with_and_without_shuffling(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for i, extra in enumerate([[], ["server.shuffle_choices=true"]]):
        out = tmp_path / f"v{i}"
        assert validate(["server=mcqa", *extra, "--out", str(out)]) == 0
        kinds = json.loads((out / "report.json").read_text())["kinds"]
        assert kinds["option_text"]["cases"] == 50 and kinds["hedged"]["failures"] == 0
        assert all(k["failures"] == 0 for k in kinds.values())
    assert "PASS" in capsys.readouterr().out


def test_a_run_against_the_fake(tmp_path: Path) -> None:
    tasks = list(_server("limit=10").tasks())[:10]
    pairs = {t.metadata["question"]: (f"The answer is ({t.answer}).", "The answer is (B) or (C).") for t in tasks}
    fake = FakeOpenAI(pairs=pairs, alternate=True)
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=mcqa", "limit=10", "sampler=dpo", "policy=openai", f"policy.base_url={url}",
                               "progress=false", "format.validation_fraction=0"], output_dir=str(out))
        rollgen.run(cfg)
    rows = list(read_jsonl(out / "rollouts.jsonl"))
    assert len(rows) == 20 and Counter(r["reward"] for r in rows) == {1.0: 10, 0.0: 10}
    assert all(r["verifier"] == "choice" for r in rows)
    hedged = [r for r in rows if r["reward"] == 0.0]
    assert all(r["reward_details"]["hedged"] for r in hedged)
    dataset = list(read_jsonl(out / "dataset" / "train.jsonl"))
    assert len(dataset) == 10 and all(" or " in d["rejected"][-1]["content"] for d in dataset)
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["verifier"]["_target_"].endswith("MultipleChoice") and saved["guards"]["copied_from_prompt"] is False


def test_a_shuffled_run_shows_each_repeat_its_own_order_and_scores_it(tmp_path: Path) -> None:
    server = _server("limit=6", "server.shuffle_choices=true", "server.seed=3")
    tasks = {t.id: t for t in list(server.tasks())[:6]}
    fake = FakeOpenAI(replies={t.metadata["question"]: "Answer: A" for t in tasks.values()})  # always the letter A
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=mcqa", "limit=6", "server.shuffle_choices=true", "server.seed=3",
                               "sampler.num_repeats=4", "policy=openai", f"policy.base_url={url}", "progress=false"],
                              output_dir=str(out))
        rollgen.run(cfg)
    rows = list(read_jsonl(out / "rollouts.jsonl"))
    assert len(rows) == 24
    orders: dict[str, set[str]] = {}
    for row in rows:
        shown = server.for_repeat(tasks[row["task_id"]], row["repeat"])
        assert row["messages"][: len(shown.chat())] == shown.chat()  # the policy saw this repeat's order
        assert row["reward"] == (1.0 if shown.answer == "A" else 0.0)  # scored against the gold as shown
        orders.setdefault(row["task_id"], set()).add(json.dumps(shown.chat()))
    assert all(len(o) > 1 for o in orders.values())  # repeats of a task really differ
    assert {r["reward"] for r in rows} == {0.0, 1.0}
    # `rollgen verify` re-scores each repeat against the order it was shown: no reward changes
    from rollgen.commands.verify import main as verify_main

    assert verify_main([str(out)]) == 0
    summary = json.loads((out / "reverify.json").read_text())
    assert summary["rescored"] == 24 and summary["changed"] == 0
