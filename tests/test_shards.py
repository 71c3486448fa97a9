"""Shards (``shard.index`` / ``shard.count``) and ``rollgen merge``: real runs against the fake server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rollgen
from rollgen.commands import merge
from rollgen.errors import ConfigError
from rollgen.rundir import read_jsonl
from rollgen.shards import shard_of
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI

IDS = [f"t{i}" for i in range(300)] + ["", "ünï/cödé", "id with \"quotes\" and \\slashes", "x" * 500]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_task_exactly_once(count: int) -> None:
    parts = [[t for t in IDS if shard_of(t, count) == i] for i in range(count)]
    assert sorted(t for part in parts for t in part) == sorted(IDS)  # every task, none twice
    if count > 1:
        assert all(len(part) >= len(IDS) // count // 2 for part in parts)  # spread, not all in one


def test_the_split_is_the_same_in_every_process() -> None:
    """Not Python's ``hash()``: another interpreter with another hash seed puts every id in the same shard."""
    code = ("import json, sys; from rollgen.shards import shard_of; "
            "print(json.dumps([shard_of(t, 7) for t in json.loads(sys.stdin.read())]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(IDS), capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert json.loads(out) == [shard_of(t, 7) for t in IDS]


def test_shard_index_must_be_below_count() -> None:
    with pytest.raises(ConfigError) as e:
        rollgen.compose(["shard.index=2", "shard.count=2"], output_dir=".")
    assert len(e.value.lines) == 1 and e.value.lines[0].startswith("shard: ") and "shard.index" in e.value.lines[0]
    with pytest.raises(ConfigError) as e:
        rollgen.compose(["shard.count=0"], output_dir=".")
    assert e.value.lines[0].startswith("shard.count: ")


def _run(tmp_path: Path, name: str, tasks: Path, *extra: str) -> Path:
    """One run (or shard) into tmp_path/name, against a fake of its own that answers right and wrong by turns."""
    with serve_in_thread(FakeOpenAI(alternate=True)) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                               "progress=false", "sampler=dpo", "sampler.num_repeats=2",
                               "sampler.num_samples_in_parallel=1", "format.validation_fraction=0.25", *extra],
                              output_dir=str(tmp_path / name))
        report = rollgen.run(cfg)
    assert report["status"] == "complete"
    return tmp_path / name


def _rows(run: Path, ignore: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Each dataset split's rows, as sorted JSON lines (a run writes rollouts as they complete: order may differ),
    less the keys in ``ignore``."""
    return {p.name: sorted(json.dumps({k: v for k, v in r.items() if k not in ignore}, sort_keys=True)
                           for r in read_jsonl(p))
            for p in sorted((run / "dataset").glob("*.jsonl"))}


@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("shards")
    os.environ["ROLLGEN_CACHE_DIR"] = str(tmp / "cache")  # module scope: the autouse cache fixture is per test
    try:
        tasks = write_arith_tasks(tmp / "tasks.jsonl", 24)
        whole = _run(tmp, "whole", tasks)
        s0 = _run(tmp, "s0", tasks, "shard.index=0", "shard.count=2")
        s1 = _run(tmp, "s1", tasks, "shard.index=1", "shard.count=2")
    finally:
        del os.environ["ROLLGEN_CACHE_DIR"]
    return whole, s0, s1


def test_two_shards_merged_give_the_single_machine_dataset(shard_runs: tuple[Path, Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    whole, s0, s1 = shard_runs
    t0 = {r["id"] for r in read_jsonl(s0 / "tasks.jsonl")}
    t1 = {r["id"] for r in read_jsonl(s1 / "tasks.jsonl")}
    assert t0 and t1 and not t0 & t1 and t0 | t1 == {r["id"] for r in read_jsonl(whole / "tasks.jsonl")}
    out = tmp_path / "merged"
    assert merge.main([str(s1), str(s0), "--out", str(out)]) == 0  # any order of the dirs
    assert "merged 2 shards: 24 tasks, 48 rollouts" in capsys.readouterr().out
    assert _rows(out) == _rows(whole) and set(_rows(out)) == {"train.jsonl", "validation.jsonl"}
    a, b = json.loads((out / "report.json").read_text()), json.loads((whole / "report.json").read_text())
    assert a["collection"] == b["collection"] and a["funnel"] == b["funnel"] and a["dataset"] == b["dataset"]
    assert a["calls"]["model_calls"] == 48 and [s["tasks"] for s in a["merged"]["shards"]] == [len(t0), len(t1)]
    assert json.loads((out / "run_config.json").read_text())["shard"] == {"index": 0, "count": 1}
    # overrides apply to the stages after collection, on the whole
    assert merge.main([str(s0), str(s1), "--out", str(tmp_path / "m2"), "quality.min_reward_threshold=1.0"]) == 0
    assert json.loads((tmp_path / "m2" / "report.json").read_text())["quality"]["rollouts"] == 48
    # a run dir whose name has "=" in it (a sweep's, say) is a run dir, not an override
    named = tmp_path / "shard=1"
    shutil.copytree(s1, named)
    assert merge.main([str(s0), str(named), "--out", str(tmp_path / "m3")]) == 0
    assert _rows(tmp_path / "m3") == _rows(whole)


def test_merge_names_a_missing_or_duplicated_shard(shard_runs: tuple[Path, Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, s0, s1 = shard_runs
    out = tmp_path / "merged"
    assert merge.main([str(s0), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no run dir with shard.index=1 (of shard.count=2)" in err and not out.exists()
    copy = tmp_path / "s0-again"
    shutil.copytree(s0, copy)
    assert merge.main([str(s0), str(copy), str(s1), "--out", str(out)]) == 1
    assert f"shard.index=0 given twice: {s0} and {copy}" in capsys.readouterr().err and not out.exists()


def test_merge_names_missing_and_duplicated_rollouts(shard_runs: tuple[Path, Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, s0, s1 = shard_runs
    broken = tmp_path / "s1"
    shutil.copytree(s1, broken)
    lines = (broken / "rollouts.jsonl").read_text().splitlines(keepends=True)
    first = json.loads(lines[0])
    (broken / "rollouts.jsonl").write_text("".join(lines[1:] + lines[1:2]))  # one gone, another twice
    out = tmp_path / "merged"
    assert merge.main([str(s0), str(broken), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"1 rollouts missing (task#repeat): {first['task_id']}#{first['repeat']}" in err
    assert "1 rollouts given twice" in err and not out.exists()
    # an interrupted shard is incomplete too, even with every rollout there
    shutil.copy(s1 / "rollouts.jsonl", broken / "rollouts.jsonl")
    report = json.loads((broken / "report.json").read_text())
    (broken / "report.json").write_text(json.dumps({**report, "status": "interrupted", "reason": "stopped by a signal"}))
    assert merge.main([str(s0), str(broken), "--out", str(out)]) == 1
    assert f"{broken}: collection interrupted: stopped by a signal" in capsys.readouterr().err


def test_merge_refuses_shards_of_different_runs(shard_runs: tuple[Path, Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    whole, s0, s1 = shard_runs
    other = tmp_path / "s1"
    shutil.copytree(s1, other)
    config = json.loads((other / "run_config.json").read_text())
    config["sampler"]["responses_create_params"]["temperature"] = 0.3
    (other / "run_config.json").write_text(json.dumps(config))
    assert merge.main([str(s0), str(other), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert f"{other} is not a shard of the same run as {s0}: sampler.responses_create_params.temperature" in err
    assert merge.main([str(s0), str(whole), "--out", str(tmp_path / "m")]) == 2  # count 2 vs 1
    assert "shard.count" in capsys.readouterr().err
    assert merge.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")]) == 2
    assert "not a rollgen run directory" in capsys.readouterr().err


def test_dedup_and_splits_span_the_shards(tmp_path: Path) -> None:
    """The same question under several task ids, falling in different shards: merged, dedup drops the copies
    across shards (each shard alone cannot) and the split keeps one prompt in one split, as one run does."""
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Calculate {i % 10} + 2.", "answer": str(i % 10 + 2)})
                             + "\n" for i in range(30)))
    sft = ("sampler=sft", "format=sft", "quality=sft", "quality.min_reward_threshold=0.0")
    whole = _run(tmp_path, "whole", tasks, *sft)
    shards = [_run(tmp_path, f"s{i}", tasks, *sft, f"shard.index={i}", "shard.count=2") for i in (0, 1)]
    out = tmp_path / "merged"
    assert merge.main([*map(str, shards), "--out", str(out)]) == 0
    merged, single = (json.loads((d / "report.json").read_text()) for d in (out, whole))
    assert merged["funnel"] == single["funnel"]
    # which of two identical rollouts dedup keeps follows the order it meets them (a run: completion order; the
    # merge: shard by shard), so the kept rows are the same apart from the task they came from
    assert _rows(out, ignore=("task_id", "rollout_id")) == _rows(whole, ignore=("task_id", "rollout_id"))
    dropped = {r["filter"]: r["dropped"] for r in merged["funnel"]}
    per_shard = sum(r["dropped"] for d in shards for r in json.loads((d / "report.json").read_text())["funnel"]
                    if r["filter"] == "exact_dedup")
    assert dropped["exact_dedup"] > per_shard  # copies in different shards met only in the merge
    splits = {}
    for name, rows in _rows(out).items():
        for row in rows:
            prompt = json.dumps(json.loads(row).get("prompt") or json.loads(row).get("messages", [])[:-1])
            splits.setdefault(prompt, set()).add(name)
    assert splits and all(len(s) == 1 for s in splits.values())  # no prompt in two splits
