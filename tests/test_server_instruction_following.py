"""``server=instruction_following``: IFEval's verifiable instructions composed onto bundled requests, scored by
the instructions verifier (strict and loose), read from IFEval / NeMo Gym files, and run against the fake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import rollgen
from rollgen.build import build, build_verifier
from rollgen.errors import ConfigError
from rollgen.records import Rollout, Task
from rollgen.rundir import read_jsonl
from rollgen.servers.instruction_following import InstructionFollowingServer, base_prompts
from rollgen.servers.taskfile import TaskFileError, TaskFileServer
from rollgen.verifiers.ifeval import CONFLICTS, INSTRUCTIONS, broken, compliant_reply, evaluate, instruction
from rollgen.verifiers.ifeval.text import count_sentences, count_words
from rollgen.verifiers.instructions import InstructionFollowing
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI


def _tasks(*overrides: str) -> list[Task]:
    return list(build(rollgen.compose(["server=instruction_following", *overrides], output_dir="x").server).tasks())


def _score(task: Task, text: str, **params: str) -> tuple[float, dict]:
    verdict = InstructionFollowing(InstructionFollowing.Params(**params)).verify(
        task, Rollout(id=f"{task.id}#0", task_id=task.id, repeat=0, messages=[], completion=text, status="ok"))
    return verdict.reward, verdict.details


def _task(ids: list[str], kwargs: list[dict] | None = None) -> Task:
    return Task(id="t", prompt="Write something.", metadata={"instruction_id_list": ids,
                                                              "kwargs": kwargs or [{} for _ in ids]})


def test_tasks_are_composed_deterministically_from_the_seed_with_1_to_3_compatible_instructions() -> None:
    tasks = _tasks("server.size=300")
    assert issubclass(InstructionFollowingServer, TaskFileServer) and len(tasks) == 300
    assert len(base_prompts()) >= 40 and len({b.prompt for b in base_prompts()}) == len(base_prompts())
    kinds = set()
    for task in tasks:
        ids = task.metadata["instruction_id_list"]
        assert 1 <= len(ids) <= 3 and len(task.metadata["kwargs"]) == len(ids)
        assert not any(b in CONFLICTS[a] for i, a in enumerate(ids) for b in ids[i + 1:]), ids
        base = next(b for b in base_prompts() if b.id == task.metadata["base_prompt"])
        assert task.messages[-1]["content"].startswith(base.prompt) and task.messages[-1]["content"] != base.prompt
        kinds.update(ids)
    assert len(kinds) >= 25 and kinds <= set(INSTRUCTIONS)
    again = _tasks("server.size=300")
    assert [t.model_dump() for t in again] == [t.model_dump() for t in tasks]
    other = _tasks("server.size=300", "server.seed=1")
    assert [t.messages for t in other] != [t.messages for t in tasks]


def test_the_kinds_and_the_count_come_from_the_config() -> None:
    tasks = _tasks("server.size=40", "server.instructions=[no_comma,title,length_constraints:number_words]",
                   "server.min_instructions=2", "server.max_instructions=2")
    assert all(len(t.metadata["instruction_id_list"]) == 2 for t in tasks)
    assert {i for t in tasks for i in t.metadata["instruction_id_list"]} == {
        "punctuation:no_comma", "detectable_format:title", "length_constraints:number_words"}
    with pytest.raises(ConfigError, match=r"server.instructions: unknown instruction kind 'nope'"):
        _tasks("server.instructions=[nope]")
    with pytest.raises(ConfigError, match=r"min_instructions \(4\) is above max_instructions \(3\)"):
        _tasks("server.min_instructions=4")


# (instruction id, kwargs, response, followed under IFEval's rules): the quirks included.
IFEVAL_CASES = [
    ("keywords:existence", {"keywords": ["cat", "sun"]}, "Concatenate the sunny words.", True),  # regex, anywhere
    ("keywords:existence", {"keywords": ["cat", "sun"]}, "A cat.", False),
    ("keywords:frequency", {"keyword": "tea", "frequency": 2, "relation": "less than"}, "Tea and TEA.", False),
    ("keywords:frequency", {"keyword": "tea", "frequency": 2, "relation": "at least"}, "Tea and TEA.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "Concatenate words.", True),  # whole words only
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "My Cat sleeps.", False),
    ("keywords:letter_frequency", {"letter": "Z", "let_frequency": 3, "let_relation": "at least"}, "zig zag Z", True),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "less than"}, "zig zag Z", False),
    ("language:response_language", {"language": "es"}, "El perro come la comida en la casa y luego duerme.", True),
    ("language:response_language", {"language": "es"}, "The dog eats the food in the house and then sleeps.", False),
    ("language:response_language", {"language": "de"}, "12345 67890", True),  # nothing to detect: followed
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "Dr. Smith paid 3.5 dollars at example.com today. Then he left!", True),  # 2 sentences
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"}, "One. Two? Three!", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "A\n***\nB\n***\n", True),  # empty at an end
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "A\n***\n***\nB", False),  # empty in between
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "it's a well-known fact", False),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Next"},
     "First one.\n\n\"Next, the second.", True),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "next"},
     "First one.\n\nNextly the second.", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], see [ ].", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\npps nope", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\np. p. s call me", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two\n**bold** line", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two\n-three", False),
    ("detectable_format:constrained_response", {}, "Well... My answer is maybe.", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "A **bold** word.", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "A **bold** word.", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "A *one* and ** word.", False),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\na\nSECTION 2\nb", True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "Section 1\na\nSection 2\nb", False),
    ("detectable_format:json_format", {}, '```JSON\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, 'Here you go: {"a": 1}', False),
    ("detectable_format:title", {}, "<<  >> then <<Real title>>", True),
    ("detectable_format:title", {}, "<<broken\ntitle>>", False),
    ("combination:two_responses", {}, "First.\n******\nSecond.", True),
    ("combination:two_responses", {}, "Same.\n******\nSame.", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "  write a POEM. Roses are red.", True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, '"Done. any other questions?"  ', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "THIS is WELL-KNOWN.", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "THIS is WELL-KNOWN.", False),
    ("change_case:english_capital", {}, "THIS IS AN ENGLISH SENTENCE ABOUT THE GARDEN.", True),
    ("change_case:english_capital", {}, "THIS IS an english sentence.", False),
    ("change_case:english_lowercase", {}, "this is an english sentence about the garden.", True),
    ("change_case:english_lowercase", {}, "das ist ein deutscher satz über den garten und das haus.", False),
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "One, two.", False),
    ("startend:quotation", {}, '  "Quoted."  ', True),
    ("startend:quotation", {}, '"', False),
    ("multi-turn:constrained_start", {"starter": "I would say"}, "Well.\nI would say yes.", True),  # any line
]


@pytest.mark.parametrize(("iid", "kwargs", "text", "followed"), IFEVAL_CASES,
                         ids=[f"{c[0].split(':')[1]}-{i}" for i, c in enumerate(IFEVAL_CASES)])
def test_each_instruction_follows_ifevals_rules(iid: str, kwargs: dict, text: str, followed: bool) -> None:
    assert instruction(iid, kwargs)(text) is followed


def test_every_instruction_has_a_case_and_counts_match_ifevals_splitters() -> None:
    assert {c[0] for c in IFEVAL_CASES} == set(INSTRUCTIONS) and len(INSTRUCTIONS) >= 25
    assert count_words("it's a well-known fact, 3.5 times") == 9
    assert count_sentences("Mr. Brown met Ph.D. students at 4.30 p.m. in the U.S.A. today. They left...") == 2


def test_bad_instruction_arguments_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown instruction id 'no:such'"):
        instruction("no:such")
    with pytest.raises(ValueError, match=r"length_constraints:number_words: kwargs.relation must be one of"):
        instruction("length_constraints:number_words", {"num_words": 5, "relation": "at most"})
    with pytest.raises(ValueError, match=r"kwargs.num_bullets must be an integer >= 0, got 'three'"):
        instruction("detectable_format:number_bullet_lists", {"num_bullets": "three"})
    assert instruction("detectable_format:number_bullet_lists", {"num_bullets": 1.0, "language": None})("* a")


def test_strict_and_loose_modes_and_reward_per_instruction() -> None:
    task = _task(["detectable_format:json_format", "keywords:existence"], [{}, {"keywords": ["tea"]}])
    text = 'Sure, here is the JSON you asked for:\n```json\n{"drink": "*tea*"}\n```'
    reward, details = _score(task, text)
    assert reward == 0.5 and details["followed"] == 1 and details["total"] == 2 and details["mode"] == "strict"
    assert [(i["id"], i["strict"], i["loose"]) for i in details["instructions"]] == [
        ("detectable_format:json_format", False, True), ("keywords:existence", True, True)]
    assert _score(task, text, mode="loose")[0] == 1.0
    assert _score(task, text, reward="all")[0] == 0.0
    assert _score(task, f"<think>Plan, then write.</think>{text.split(chr(10), 1)[1]}")[0] == 1.0  # after </think>
    assert _score(task, "   ")[0] == 0.0 and _score(task, "   ", mode="loose")[0] == 0.0
    with pytest.raises(ValueError, match="no instructions"):
        _score(Task(id="x", prompt="Hi."), "Hello.")


def test_every_composed_task_has_a_following_reply_scoring_1_and_breaking_any_instruction_scores_less() -> None:
    for task in _tasks("server.size=120", "server.seed=3"):
        ids, kwargs = task.metadata["instruction_id_list"], task.metadata["kwargs"]
        reply = compliant_reply(ids, kwargs, task.metadata["topic_words"])
        assert reply is not None
        assert _score(task, reply)[0] == 1.0 and _score(task, reply, mode="loose")[0] == 1.0
        for i, (iid, kw) in enumerate(zip(ids, kwargs)):
            verdict = evaluate(ids, kwargs, broken(iid, kw, reply))[i]
            assert not verdict.strict and not verdict.loose, (iid, kw)


@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_rollgen_validate_passes_in_both_modes(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rollgen.commands.validate import main

    rc = main(["server=instruction_following", "server.size=30", f"verifier.mode={mode}", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "report.json").read_text())
    assert rc == 0, capsys.readouterr()
    assert report["tasks"] == 30 and report["false_negative_rate"] == 0.0 and report["false_positive_rate"] == 0.0
    assert report["kinds"]["follows_all"]["cases"] == 30 and len([k for k in report["kinds"] if k.startswith("breaks_")]) >= 10


def test_ifeval_and_nemo_gym_rows_and_bad_rows(tmp_path: Path) -> None:
    hf_kwargs = {"num_highlights": None, "relation": None, "num_words": None, "keywords": None}
    rows = [
        {"key": 1000, "prompt": "Write a 300+ word summary.", "instruction_id_list": ["punctuation:no_comma"],
         "kwargs": [dict(hf_kwargs)]},  # Hugging Face google/IFEval: every key, unused ones null
        {"id": 7, "responses_create_params": {"input": [{"role": "user", "content": "Write a title."}]},
         "instruction_id_list": ["detectable_format:title"], "kwargs": [{}], "prompt": "Write a title."},
        {"key": 1001, "prompt": "Write.", "instruction_id_list": ["no:such"], "kwargs": [{}]},
        {"key": 1002, "prompt": "Write.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]},
    ]
    path = tmp_path / "ifeval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = rollgen.compose(["server=instruction_following", f"server.data_path={path}"], output_dir="x")
    server = build(cfg.server)
    skipped: list[str] = []  # on_bad_row=skip: the run passes a list for the skipped rows
    tasks = list(server.tasks(skipped))
    assert [t.messages[-1]["content"] for t in tasks] == ["Write a 300+ word summary.", "Write a title."]
    assert skipped[0].startswith(f"{path}:3: unknown instruction id 'no:such'")
    assert skipped[1].startswith(f"{path}:4: metadata.kwargs must be a list of 1 objects")
    assert _score(tasks[0], "No commas here.")[0] == 1.0 and _score(tasks[1], "<<A Title>>\nText.")[0] == 1.0
    with pytest.raises(TaskFileError, match=r"ifeval\.jsonl:3: unknown instruction id"):
        _tasks(f"server.data_path={path}")


def test_a_run_scores_the_replies_and_writes_rollouts_and_a_dataset(tmp_path: Path) -> None:
    tasks = _tasks("server.size=6")
    reply = {}
    for i, task in enumerate(tasks):
        ids, kwargs = task.metadata["instruction_id_list"], task.metadata["kwargs"]
        good = compliant_reply(ids, kwargs, task.metadata["topic_words"])
        reply[task.id] = good if i % 2 == 0 else broken(ids[0], kwargs[0], good)
    fake = FakeOpenAI(replies={t.messages[-1]["content"]: reply[t.id] for t in tasks})
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=instruction_following", "server.size=6", "policy=openai",
                               f"policy.base_url={url}", "progress=false", "format.validation_fraction=0"],
                              output_dir=str(out))
        report = rollgen.run(cfg)
    rows = {r["task_id"]: r for r in read_jsonl(out / "rollouts.jsonl")}
    assert len(rows) == 6 and fake.requests == 6 and all(r["status"] == "ok" for r in rows.values())
    for i, task in enumerate(tasks):
        row, n = rows[task.id], len(task.metadata["instruction_id_list"])
        assert row["verifier"] == "instructions" and row["reward_details"]["total"] == n
        assert row["reward"] == 1.0 if i % 2 == 0 else row["reward"] <= (n - 1) / n
    dataset = list(read_jsonl(out / "dataset" / "train.jsonl"))  # sampler=sft keeps reward >= 0.8
    assert sorted(d["messages"][-1]["content"] for d in dataset) == sorted(reply[t.id] for t in tasks[::2])
    assert report["kept"]["dataset_rows"] == 3
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["verifier"]["_target_"].endswith("InstructionFollowing") and saved["guards"]["hedging"] is False
    assert saved["guards"]["copied_from_prompt"] is False


def test_the_verifier_builds_from_the_preset() -> None:
    cfg = rollgen.compose(["server=instruction_following", "verifier.mode=loose"], output_dir="x")
    verifier = build_verifier(cfg.verifier, cfg.guards)
    task = _task(["punctuation:no_comma"])
    rollout = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion="Yes, sure.\nNo commas.", status="ok")
    verdict = asyncio.run(rollgen.verifiers.verify(verifier, task, rollout))
    assert verdict.reward == 1.0 and verdict.details["mode"] == "loose"
