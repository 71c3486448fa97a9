"""Leak-free splits on realistic inputs: reasoning-gym task sets repeat prompts, a policy words each answer
differently; equal (normalised) prompts must share a split, `dataset validate` and the card must check the
overlap for real, and `server.unique_prompts` makes `server.size=N` mean N distinct tasks."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rollgen
from rollgen.config import SftFormat
from rollgen.engine import UserError
from rollgen.formats import build_dataset
from rollgen.formats.split import assign_splits
from rollgen.formats.validate import validate
from rollgen.servers import TaskSourceError
from rollgen.servers.math import MathServer
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI


def plain(text: str) -> str:
    """The test's own normalisation: case, runs of whitespace and sentence punctuation ignored."""
    return " ".join(re.sub(r"[.,!?;:]", " ", text.casefold()).split())


def user_text(row: dict[str, Any]) -> str:
    msgs = row["prompt"] if "prompt" in row else row["messages"]
    return "\n".join(m["content"] for m in msgs if m["role"] == "user")


def split_rows(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {f.stem: [json.loads(x) for x in f.read_text().splitlines()] for f in folder.glob("*.jsonl")}


def leaks(folder: Path) -> int:
    """Rows of validation or test whose prompt is also in another split, by the test's normalisation."""
    rows = split_rows(folder)
    where: dict[str, set[str]] = {}
    for name, split in rows.items():
        for r in split:
            where.setdefault(plain(user_text(r)), set()).add(name)
    return sum(len(where[plain(user_text(r))]) > 1 for name, split in rows.items() if name != "train" for r in split)


@pytest.mark.parametrize("sampler", ["dpo", "sft"])
def test_a_real_run_on_a_generator_with_repeated_prompts_does_not_leak(tmp_path: Path, sampler: str) -> None:
    fake = FakeOpenAI(correct_rate=0.5, seed=3, varied=True)  # every reply worded differently: no dedup merges them
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", "server.size=300", "server.unique_prompts=false",
                               f"sampler={sampler}", "sampler.num_repeats=4", "format.validation_fraction=0.2",
                               "progress=false", "quality.plots=false"], output_dir=str(tmp_path / "run"))
        report = rollgen.run(cfg)
    tasks = [json.loads(x) for x in (tmp_path / "run" / "tasks.jsonl").read_text().splitlines()]
    prompts = [plain(t["messages"][-1]["content"]) for t in tasks]
    assert len(prompts) - len(set(prompts)) > 20  # basic_arithmetic repeats prompts
    by_id = assign_splits([t["id"] for t in tasks], 0.2, 0.0, cfg.seed)  # splitting by task id would leak
    train = {p for t, p in zip(tasks, prompts) if by_id[t["id"]] == "train"}
    assert sum(p in train for t, p in zip(tasks, prompts) if by_id[t["id"]] == "validation") > 0
    folder = tmp_path / "run" / "dataset"
    assert report["dataset"]["validation"] > 0 and leaks(folder) == 0
    check = validate(folder)
    assert check.ok and check.overlap["leaking_rows"] == 0
    by = report["dataset_details"]["split_by"]
    assert by["tasks_sharing_a_group"] > 0 and by["distinct_prompts"] < by["tasks"]
    assert report["dataset_details"]["prompt_overlap"]["leaking_rows"] == 0
    assert "no prompt is in two splits" in (folder / "README.md").read_text()


def _row(task: str, prompt: str, answer: str = "ok") -> str:
    return json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                       "task_id": task}) + "\n"


def test_validate_compares_prompts_as_normalised_text_not_ids(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(_row("a", "Calculate 5 + 9.") + _row("b", "What is 2 * 3?"))
    (tmp_path / "validation.jsonl").write_text(
        _row("c", "calculate  5+9") + _row("d", "Calculate -9 + 9.") + _row("e", "WHAT IS 2 * 3 ?"))
    check = validate(tmp_path, "sft")
    assert not check.ok
    assert [(p.path.name, p.line) for p in check.errors] == [("validation.jsonl", 1), ("validation.jsonl", 3)]
    assert "prompt also in train.jsonl (line 1): splits leak" in check.errors[0].message
    assert "(line 2)" in check.errors[1].message  # -9 + 9 is another problem than 5 + 9: no error for line 2
    assert check.overlap == {"rows_checked": 5, "leaking_rows": 2, "leaking_rows_by_file": {"validation.jsonl": 2},
                             "leaking_prompts": 2}


def test_validate_reads_the_prompt_of_every_format(tmp_path: Path) -> None:
    msgs = [{"role": "user", "content": "Solve 3 + 4."}]
    chosen, rejected = [{"role": "assistant", "content": "7"}], [{"role": "assistant", "content": "8"}]
    rows = {"dpo": {"prompt": msgs, "chosen": chosen, "rejected": rejected},
            "dpo-implicit": {"chosen": msgs + chosen, "rejected": msgs + rejected},
            "kto": {"prompt": "Solve 3 + 4.", "completion": "7", "label": True},
            "rl": {"prompt": msgs, "ground_truth": "7"}}
    for name, row in rows.items():
        d = tmp_path / name
        d.mkdir()
        (d / "train.jsonl").write_text(json.dumps(row) + "\n")
        (d / "test.jsonl").write_text(json.dumps(row) + "\n")
        check = validate(d)
        assert not check.ok and check.overlap["leaking_rows"] == 1, name


def _run_dir(root: Path, prompts: list[str], near: bool = False) -> Path:
    """A run dir (tasks, rollouts, curated) with one task per prompt and two rollouts each."""
    root.mkdir(parents=True)
    quality = {"kind": "default", "chain": ["status", "near_dedup"] if near else ["status"],
               "filters": {"near_dedup": {"field": "prompt_completion", "threshold": 0.8, "ngram": 5, "num_perm": 128,
                                          "seed": 1, "scheme": "oph"}}}
    (root / "run_config.json").write_text(json.dumps({"quality": quality}))
    with open(root / "curated.jsonl", "w") as f:
        for i, prompt in enumerate(prompts):
            for rep in range(2):
                f.write(json.dumps({"id": f"t{i}#{rep}", "task_id": f"t{i}", "repeat": rep, "reward": float(rep),
                                    "status": "ok", "completion": f"answer {i} {rep}",
                                    "messages": [{"role": "user", "content": prompt},
                                                 {"role": "assistant", "content": f"answer {i} {rep}"}]}) + "\n")
    return root / "curated.jsonl"


def test_near_duplicate_prompts_share_a_split_when_the_run_dedups_near_duplicates(tmp_path: Path) -> None:
    story = ("A farmer has {n} cows and buys {m} more at the market on a sunny morning before noon. She walks "
             "them home along the dusty road past the mill, the school and the small chapel, where her neighbours "
             "wave and count the animals as they pass by the gate of the orchard in the warm light of late spring. "
             "How many cows does the farmer have now in the big red barn by the old river?")
    prompts = []
    for i in range(40):
        base = story.format(n=i + 2, m=i + 5)
        prompts += [base, base.replace("sunny", "bright")]  # a paraphrase: same numbers, one word changed
    cfg = SftFormat(validation_fraction=0.3, best_k=2)

    def apart(folder: Path) -> int:  # paraphrase pairs split across train and validation
        where = {r["task_id"]: name for name, split in split_rows(folder).items() for r in split}
        return sum(where[f"t{2 * i}"] != where[f"t{2 * i + 1}"] for i in range(40))

    exact = build_dataset(cfg, _run_dir(tmp_path / "exact", prompts), tmp_path / "a", seed=1)
    assert exact["split_by"]["groups"] == 80 and apart(tmp_path / "a") > 0  # exact text alone keeps them apart
    near = build_dataset(cfg, _run_dir(tmp_path / "near", prompts, near=True), tmp_path / "b", seed=1)
    assert near["split_by"]["groups"] == 40 and "near-duplicate" in near["split_by"]["key"]
    assert apart(tmp_path / "b") == 0 and near["splits"]["validation"] > 0


@given(groups=st.lists(st.integers(0, 12), min_size=1, max_size=60), val=st.floats(0, 0.45),
       test=st.floats(0, 0.45), seed=st.integers(0, 3))
def test_groups_are_never_split(groups: list[int], val: float, test: float, seed: int) -> None:
    tasks = {f"t{i}": f"g{g}" for i, g in enumerate(groups)}
    split = assign_splits(tasks, val, test, seed)
    assert set(split) == set(tasks)
    assert split == assign_splits(dict(reversed(list(tasks.items()))), val, test, seed)  # arrival order is irrelevant
    by_group: dict[str, set[str]] = {}
    for t, g in tasks.items():
        by_group.setdefault(g, set()).add(split[t])
    assert all(len(s) == 1 for s in by_group.values())
    names = {s for ss in by_group.values() for s in ss}
    asked = {n for n, f in (("validation", val), ("test", test)) if f > 0}
    assert names <= {"train", *asked}  # a split with fraction 0 stays empty
    if len(by_group) >= 2:
        assert "train" in names
    if len(by_group) >= 1 + len(asked):
        assert asked <= names  # every asked-for split gets a group when there are enough


def test_a_card_notes_a_split_that_cannot_be_filled(tmp_path: Path) -> None:
    curated = _run_dir(tmp_path / "run", ["Calculate 2 + 2."] * 5)
    summary = build_dataset(SftFormat(validation_fraction=0.2), curated, tmp_path / "ds", seed=0)
    assert summary["splits"] == {"train": 5, "validation": 0}
    assert any("validation is empty: 5 tasks form 1 prompt group" in n for n in summary["notes"])
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "5 tasks, 1 distinct prompts, 1 groups" in card and "validation is empty" in card


# ---------------------------------------------------------------- server.unique_prompts


def test_size_means_distinct_generated_tasks(cache_dir: Path) -> None:
    params = {"generators": ["basic_arithmetic"], "size": 300, "seed": 42}
    repeated = list(MathServer(MathServer.Params(**params, unique_prompts=False)).tasks())
    distinct = list(MathServer(MathServer.Params(**params)).tasks())
    texts = [plain(t.messages[-1]["content"]) for t in repeated]
    assert len(repeated) == 300 and len(set(texts)) < 280
    assert len(distinct) == 300 == len({plain(t.messages[-1]["content"]) for t in distinct})
    assert max(int(t.id.rsplit("-", 1)[1]) for t in distinct) >= 300  # drew past index 299 to replace repeats
    first = {t.id: t for t in distinct}  # the first occurrence of each prompt keeps its reasoning-gym index
    assert all(first[t.id].messages == t.messages for t in repeated if t.id in first)


def test_a_generator_that_cannot_give_size_distinct_tasks_says_so(cache_dir: Path) -> None:
    params = MathServer.Params(generators=["gcd"], generator_config={"gcd": {"min_value": 1, "max_value": 3}}, size=12)
    with pytest.raises(TaskSourceError, match=r"server.size=12: reasoning-gym 'gcd' gave only 9 distinct questions "
                                             r"in \d+ draws .*lower server.size to 9 or less.*unique_prompts=false"):
        list(MathServer(params).tasks())
    assert not list((cache_dir / "tasks").glob("*.jsonl"))  # nothing half-written is cached
    cfg = rollgen.compose(["server.generators=[gcd]", "+server.generator_config.gcd={min_value: 1, max_value: 3}",
                           "server.size=12", "policy=openai", "policy.base_url=http://127.0.0.1:9/v1", "progress=false"],
                          output_dir=str(cache_dir.parent / "run"))
    with pytest.raises(UserError, match="gave only 9 distinct questions"):  # the CLI prints it and exits 2
        rollgen.run(cfg)


def test_unique_prompts_on_a_task_file_drops_repeats_and_says_how_many(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"id": i, "question": q, "answer": "4"}) + "\n" for i, q in
                            enumerate(["What is 2+2?", "what is 2 + 2", "What is 2+3?", "WHAT IS 2+2 ?"])))
    assert len(list(MathServer(MathServer.Params(data_path=str(path))).tasks())) == 4  # files: off by default
    with caplog.at_level(logging.WARNING, logger="rollgen"):
        kept = list(MathServer(MathServer.Params(data_path=str(path), unique_prompts=True)).tasks())
    assert [t.id for t in kept] == ["0", "2"]
    assert "2 tasks skipped whose prompt repeats an earlier task's (server.unique_prompts)" in caplog.text


def test_dataset_validate_cli_reports_the_overlap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rollgen.commands import dataset

    (tmp_path / "train.jsonl").write_text(_row("a", "Calculate 5 + 9.") + _row("b", "What is 2 * 3?"))
    (tmp_path / "validation.jsonl").write_text(_row("c", "calculate 5+9") + _row("d", "What is 2 * 4?"))
    assert dataset.main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'validation.jsonl'}:1: prompt also in train.jsonl (line 1): splits leak" in out
    assert "splits: 1 of 4 rows have a prompt (or task) that is also in another split (1 distinct prompts)" in out
