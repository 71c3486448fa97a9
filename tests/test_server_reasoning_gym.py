"""``server=reasoning_gym``: every reasoning-gym generator by name, mixed by weight, scored by the generator's
own ``score_answer`` against its own entry; gold-checked by ``rollgen validate``; run against the fake."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

import rollgen
from rollgen.build import build
from rollgen.errors import ConfigError
from rollgen.records import Rollout, Task
from rollgen.rundir import read_jsonl
from rollgen.servers.reasoning_gym import ReasoningGymServer, shares
from rollgen.servers.taskfile import TaskFileError, TaskFileServer
from rollgen.runtime import Runtime
from rollgen.validation.gold import run_gold_validation
from rollgen.verifiers.gymscore import EVAL_SCORERS, SYMPY_SCORERS, ReasoningGymScore
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI

VERIFIER = ReasoningGymScore(ReasoningGymScore.Params())


async def _gold(cfg: rollgen.config.RunConfig, tasks: list[Task]) -> dict:
    async with Runtime(cache_dir=cfg.cache_dir) as rt:
        return await run_gold_validation(cfg, tasks, rt)


def _tasks(*overrides: str) -> list[Task]:
    return list(build(rollgen.compose(["server=reasoning_gym", *overrides], output_dir="x").server).tasks())


def _score(task: Task, text: str) -> tuple[float, dict]:
    verdict = VERIFIER.verify(task, Rollout(id=f"{task.id}#0", task_id=task.id, repeat=0, messages=[],
                                            completion=text, status="ok"))
    return verdict.reward, verdict.details


def test_shares_split_the_size_by_weight() -> None:
    assert shares({"a": 1, "b": 1}, 5) == {"a": 3, "b": 2}
    assert shares({"a": 3, "b": 1}, 8) == {"a": 6, "b": 2}
    assert shares({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}
    assert sum(shares({"a": 0.1, "b": 2.7, "c": 5}, 97).values()) == 97


def test_tasks_mix_generators_by_weight_deterministically_with_the_system_prompt() -> None:
    tasks = _tasks("server.generators={leg_counting: 3, gcd: 1}", "server.size=12")
    assert issubclass(ReasoningGymServer, TaskFileServer)
    names = [t.metadata["source_dataset"] for t in tasks]
    assert names.count("leg_counting") == 9 and names.count("gcd") == 3 and names != sorted(names)  # interleaved
    assert len({t.messages[-1]["content"] for t in tasks}) == 12  # distinct questions
    for t in tasks:
        assert t.messages[0]["role"] == "system" and "<answer></answer>" in t.messages[0]["content"]
        assert {"source_seed", "source_size", "source_index", "source_config"} <= set(t.metadata)
    assert [t.model_dump() for t in _tasks("server.generators={leg_counting: 3, gcd: 1}", "server.size=12")] == [
        t.model_dump() for t in tasks]
    other = _tasks("server.generators={leg_counting: 3, gcd: 1}", "server.size=12", "server.seed=7")
    assert [t.messages for t in other] != [t.messages for t in tasks]
    listed = _tasks("server.generators=[leg_counting,gcd]", "server.size=4",
                    "+server.generator_config.gcd.min_numbers=3", "+server.generator_config.gcd.max_numbers=3")
    gcd = [t for t in listed if t.metadata["source_dataset"] == "gcd"]
    assert len(gcd) == 2 and all(len(t.metadata["numbers"]) == 3 for t in gcd)


def test_bad_generators_and_weights_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"server.generators: .*weights must be positive numbers"):
        rollgen.compose(["server=reasoning_gym", "server.generators={gcd: 0}"], output_dir="x")
    server = build(rollgen.compose(["server=reasoning_gym", "server.generators=[gcd,no_such_gen]"], output_dir="x").server)
    with pytest.raises(ValueError, match=r"unknown reasoning-gym generators \['no_such_gen'\]"):
        server.check()
    server = build(rollgen.compose(["server=reasoning_gym", "server.generators=[gcd]",
                                    "+server.generator_config.lcm.min_numbers=2"], output_dir="x").server)
    with pytest.raises(ValueError, match=r"generator_config: \['lcm'\] are not in server.generators"):
        server.check()


def test_the_generators_own_answer_scores_1_and_wrong_ones_less() -> None:
    tasks = _tasks("server.generators=[arc_agi,word_sorting,gcd,rush_hour]", "server.size=8")
    for task in tasks:
        gold = task.answer
        if gold is None:  # rush_hour: no answer of its own; its scorer checks a proposed solution
            assert _score(task, "<answer>none</answer>")[0] < 1.0
            continue
        reward, details = _score(task, f"Step by step...\n<answer>{gold}</answer>")
        assert reward == 1.0 and details["entry"] == "rebuilt" and details["extracted"] == gold.strip()
        assert _score(task, f"<answer>{gold}x</answer>")[0] < 1.0
        reward, details = _score(task, gold)  # no tag: reasoning-gym's extraction finds nothing
        assert details["extracted"] is None and reward <= 0.1
    arc = next(t for t in tasks if t.metadata["source_dataset"] == "arc_agi")
    stored = arc.model_copy(update={"metadata": {**arc.metadata, "source_size": None}})  # a JSON copy of its metadata
    reward, details = _score(stored, f"<answer>{arc.answer}</answer>")
    assert details["entry"] == "stored" and reward < 1.0  # tuples turned lists: why entries are rebuilt


def test_scorers_that_evaluate_the_reply_cannot_run_its_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    attack = f"__import__('os').system('touch {marker}')"
    for name in [*EVAL_SCORERS, *SYMPY_SCORERS]:
        task = _tasks(f"server.generators=[{name}]", "server.size=1")[0]
        reward, details = _score(task, f"<answer>{attack}</answer>")
        assert reward <= 0.1 and not marker.exists(), name
    task = _tasks("server.generators=[puzzle24]", "server.size=1")[0]
    t0 = time.monotonic()
    reward, details = _score(task, "<answer>9**9**9**9</answer>")
    assert reward == 0.0 and details["unsafe_answer"] and time.monotonic() - t0 < 5
    queens = _tasks("server.generators=[n_queens]", "server.size=1")[0]
    assert _score(queens, f"<answer>{queens.answer}</answer>")[0] == 1.0  # the literal answer still scores


def test_rollgen_validate_gold_checks_the_default_generators(tmp_path: Path) -> None:
    from rollgen.commands.validate import main

    assert main(["server=reasoning_gym", "server.size=16", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kinds"]["gold_in_tag"]["cases"] == 16 and report["kinds"]["gold_in_tag"]["failures"] == 0
    assert report["false_negative_rate"] == 0.0 and report["false_positive_rate"] == 0.0


def test_reasoning_gym_rows_from_a_file_and_bad_rows(tmp_path: Path) -> None:
    import reasoning_gym

    entries = [reasoning_gym.create_dataset("leg_counting", size=2, seed=5)[i] for i in range(2)]
    rows = [{"question": e["question"], "answer": e["answer"], "metadata": e["metadata"]} for e in entries]
    rows.append({"question": "What is 2 + 2?", "answer": "4", "metadata": {"source_dataset": "no_such_gen"}})
    path = tmp_path / "rg.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = rollgen.compose(["server=reasoning_gym", f"server.data_path={path}"], output_dir="x")
    server = build(cfg.server)
    skipped: list[str] = []  # on_bad_row=skip: the run passes a list for the skipped rows
    tasks = list(server.tasks(skipped))
    assert len(tasks) == 2 and skipped == [
        f"{path}:3: task 'rg-3': metadata.source_dataset 'no_such_gen' is not a reasoning-gym generator "
        "(its scorer is the verifier)"]
    for task, entry in zip(tasks, entries):
        reward, details = _score(task, f"<answer>{entry['answer']}</answer>")
        assert reward == 1.0 and details["entry"] == "stored"
    with pytest.raises(TaskFileError, match=r"rg\.jsonl:3: task 'rg-3'"):
        _tasks(f"server.data_path={path}")


def test_a_run_scores_replies_with_the_generators_scorer(tmp_path: Path) -> None:
    tasks = _tasks("server.generators=[leg_counting,word_sorting]", "server.size=4")
    replies = {t.messages[-1]["content"]: f"Counting...\n<answer>{t.answer}</answer>" if i % 2 == 0 else
               f"<answer>{t.answer} extra</answer>" for i, t in enumerate(tasks)}
    fake = FakeOpenAI(replies=replies)
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=reasoning_gym", "server.generators=[leg_counting,word_sorting]",
                               "server.size=4", "policy=openai", f"policy.base_url={url}", "progress=false",
                               "format.validation_fraction=0"], output_dir=str(out))
        report = rollgen.run(cfg)
    rows = {r["task_id"]: r for r in read_jsonl(out / "rollouts.jsonl")}
    assert len(rows) == 4 and fake.requests == 4
    for i, task in enumerate(tasks):
        row = rows[task.id]
        assert row["verifier"] == "reasoning_gym" and row["reward_details"]["generator"] == task.metadata["source_dataset"]
        assert row["reward"] == 1.0 if i % 2 == 0 else row["reward"] < 1.0
    assert report["kept"]["dataset_rows"] == 2 and len(list(read_jsonl(out / "dataset" / "train.jsonl"))) == 2
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["verifier"]["_target_"].endswith("ReasoningGymScore") and saved["guards"]["hedging"] is False


# Generators left out of the broad check, and why (measured on reasoning-gym 0.1.25, 2 cores).
SKIPPED = {
    "composite": "a mixer of other generators; it needs a list of datasets (server.generators mixes instead)",
    "futoshiki": "about 2 s per task to generate",
    "knight_swap": "about 2 s per task to generate",
}
# Generators whose own scorer gives full marks to an answer that is not the task's: reasoning-gym's behaviour,
# reported by `rollgen validate` as false positives.
LENIENT_SCORERS = {
    "game_of_life_halting": "scores bool(answer) == bool(gold): every non-empty answer, 'False' included, gets 1",
    "puzzle24": "checks that an expression of 4 numbers in range equals 24, not that it uses the task's numbers",
    "n_queens": "another task's board can be a valid completion of this one",
}


@pytest.mark.slow
def test_every_generator_that_builds_in_seconds_scores_its_own_answers_1() -> None:
    from reasoning_gym.factory import DATASETS

    def timeout(*_: object) -> None:
        raise TimeoutError

    failures, checked, no_gold = {}, [], []
    previous = signal.signal(signal.SIGALRM, timeout)
    try:
        for name in sorted(set(DATASETS) - set(SKIPPED)):
            signal.alarm(30)
            try:
                cfg = rollgen.compose(["server=reasoning_gym", f"server.generators=[{name}]", "server.size=2"],
                                      output_dir="x")
                tasks = list(build(cfg.server).tasks())
            finally:
                signal.alarm(0)
            report = asyncio.run(_gold(cfg, tasks))
            checked.append(name)
            if all(t.answer is None for t in tasks):
                no_gold.append(name)
                assert "gold_in_tag" not in report["kinds"]
            bad = {k: v["failures"] for k, v in report["kinds"].items() if v["failures"]}
            if bad:
                failures[name] = bad
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert len(checked) >= 100
    assert sorted(no_gold) == ["boxnet", "graph_color", "propositional_logic", "rubiks_cube", "rush_hour"]
    positives = {n: b for n, b in failures.items() if set(b) & {"gold_in_tag", "gold_after_reasoning",
                                                                "gold_after_thinking", "gold_on_own_lines"}}
    assert positives == {}
    assert set(failures) <= set(LENIENT_SCORERS), failures
