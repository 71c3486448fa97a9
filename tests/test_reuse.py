"""Reuse respects the run: only its collection hash, only the repeat indices it asks for; requests counted as sent."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import rollgen
from rollgen.commands.curate import recurate
from rollgen.metrics import run_metrics
from rollgen.rundir import read_jsonl, write_jsonl
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


def _cfg(tmp_path: Path, url: str, tasks: Path, run: str, *extra: str) -> rollgen.config.RunConfig:
    return rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
                            "policy.retry_backoff_s=0.001", *extra], output_dir=str(tmp_path / run))


def _repeats(run_dir: Path) -> Counter[int]:
    return Counter(r["repeat"] for r in read_jsonl(run_dir / "rollouts.jsonl"))


def _dataset_rows(run_dir: Path) -> int:
    return sum(1 for split in ("train", "validation") for _ in read_jsonl(run_dir / "dataset" / f"{split}.jsonl"))


def test_reuse_takes_only_the_repeats_the_run_asks_for(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 10)
    fake = FakeOpenAI(correct_rate=0.5, seed=3)
    with serve_in_thread(fake) as url:
        rollgen.run(_cfg(tmp_path, url, tasks, "four", "sampler.num_repeats=4"))
        assert fake.requests == 40
        one = rollgen.run(_cfg(tmp_path, url, tasks, "one", "sampler.num_repeats=1"))
        two = rollgen.run(_cfg(tmp_path, url, tasks, "two", "sampler=sft", "sampler.num_repeats=2",
                               "format=dpo", "quality=dpo"))
        assert fake.requests == 40  # everything came from the 4-repeat run
    assert _repeats(tmp_path / "one") == {0: 10} and one["resume"]["reused"] == 10
    assert _repeats(tmp_path / "two") == {0: 10, 1: 10} and two["resume"]["reused"] == 20
    assert one["collection"]["rollouts"] == 10 and two["collection"]["rollouts"] == 20
    # the reused 1-repeat run is repeat 0 of the 4-repeat run, and its dataset is what those rows give
    repeat0 = [r for r in read_jsonl(tmp_path / "four" / "rollouts.jsonl") if r["repeat"] == 0]
    assert sorted(read_jsonl(tmp_path / "one" / "rollouts.jsonl"), key=lambda r: r["id"]) == sorted(
        repeat0, key=lambda r: r["id"])
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("run_config.json", "tasks.jsonl"):
        shutil.copy(tmp_path / "one" / name, manual / name)
    write_jsonl(manual / "rollouts.jsonl", repeat0)
    assert recurate(manual)["kept"]["dataset_rows"] == one["kept"]["dataset_rows"] == _dataset_rows(tmp_path / "one")
    assert one["pass_at_k"]["pass@k"].keys() == {1} and set(two["pass_at_k"]["pass@k"]) == {1, 2}


def test_fewer_repeats_in_place_keep_the_others_aside_for_later(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 6)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        first = rollgen.run(_cfg(tmp_path, url, tasks, "run", "sampler.num_repeats=4"))
        fewer = rollgen.run(_cfg(tmp_path, url, tasks, "run", "sampler.num_repeats=1"))
        assert _repeats(tmp_path / "run") == {0: 6} and fewer["resume"]["kept_aside"] == 18
        aside = tmp_path / "run" / f"rollouts.{first['config_hash']}.jsonl"
        assert Counter(r["repeat"] for r in read_jsonl(aside)) == {1: 6, 2: 6, 3: 6}
        more = rollgen.run(_cfg(tmp_path, url, tasks, "run", "sampler.num_repeats=5"))
    assert fake.requests == 24 + 6  # only repeat 4 was new
    assert _repeats(tmp_path / "run") == {r: 6 for r in range(5)} and more["resume"]["reused"] == 24
    assert not aside.exists()  # every kept rollout is back in rollouts.jsonl
    ids = [r["id"] for r in read_jsonl(tmp_path / "run" / "rollouts.jsonl")]
    assert len(ids) == len(set(ids)) == 30


def test_rerun_into_a_run_dir_with_other_settings_collects_afresh(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 5)
    other_tasks = write_arith_tasks(tmp_path / "other.jsonl", 7)
    fake = FakeOpenAI()
    run = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cold = rollgen.run(_cfg(tmp_path, url, tasks, "run", "sampler.responses_create_params.temperature=0.2"))
        hot = rollgen.run(_cfg(tmp_path, url, tasks, "run", "sampler.responses_create_params.temperature=0.9"))
        assert fake.requests == 10 and hot["resume"]["reused"] == 0
        assert hot["resume"]["set_aside"] == f"rollouts.{cold['config_hash']}.jsonl"
        assert {(r["sampling"]["temperature"], r["config_hash"]) for r in read_jsonl(run / "rollouts.jsonl")} == {
            (0.9, hot["config_hash"])}
        assert hot["collection"]["rollouts"] == 5 and hot["status"] == "complete"
        model = rollgen.run(_cfg(tmp_path, url, tasks, "run", "policy.model=another-model"))
        task_file = rollgen.run(_cfg(tmp_path, url, other_tasks, "run"))
        assert fake.requests == 10 + 5 + 7
        assert {r["model"] for r in read_jsonl(run / "rollouts.jsonl")} == {"default"}
        assert task_file["collection"] == {**task_file["collection"], "tasks": 7, "rollouts": 7}
        assert len({cold["config_hash"], hot["config_hash"], model["config_hash"], task_file["config_hash"]}) == 4
        back = rollgen.run(_cfg(tmp_path, url, tasks, "run", "sampler.responses_create_params.temperature=0.2"))
    assert fake.requests == 22  # the set-aside rollouts of the first config serve it again
    assert back["resume"]["reused"] == 5 and back["config_hash"] == cold["config_hash"]
    assert {r["sampling"]["temperature"] for r in read_jsonl(run / "rollouts.jsonl")} == {0.2}
    kept = sorted(p.name for p in run.glob("rollouts.*.jsonl"))  # every other collection is kept, one file each
    assert kept == sorted(f"rollouts.{r['config_hash']}.jsonl" for r in (hot, model, task_file))
    assert back["resume"]["set_aside"] == f"rollouts.{task_file['config_hash']}.jsonl"


def test_report_and_summary_count_the_requests_actually_sent(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 20)
    fake = FakeOpenAI(faults={"429": 0.2, "500": 0.1}, seed=5, retry_after_s=0.001, correct_rate=0.6)
    with serve_in_thread(fake) as url:
        a = rollgen.run(_cfg(tmp_path, url, tasks, "a", "sampler=dpo", "policy.max_retries=20"))
        sent_a = fake.requests
        b = rollgen.run(_cfg(tmp_path, url, tasks, "b", "sampler=dpo", "sampler.num_repeats=4",
                             "policy.max_retries=20"))
        sent_b = fake.requests - sent_a
        c = rollgen.run(_cfg(tmp_path, url, tasks, "c", "sampler=dpo", "policy.max_retries=20"))  # a again
        assert fake.requests == sent_a + sent_b  # every rollout reused, nothing sent
    assert a["collection"]["by_status"] == {"ok": 40} and b["collection"]["by_status"] == {"ok": 80}
    assert a["calls"]["model_calls"] == 40 and a["calls"]["retries"] > 0
    assert a["calls"]["model_calls"] + a["calls"]["retries"] == sent_a
    assert b["calls"] == {"model_calls": 40, "retries": sent_b - 40, "reused_rollouts": 40}
    assert (f"Requests sent: 40 model calls, {sent_b - 40} retries; 40 rollouts reused"
            in (tmp_path / "b" / "report.md").read_text())
    for run, report, sent in (("a", a, sent_a), ("b", b, sent_b)):
        m = run_metrics(tmp_path / run)
        assert m["model_calls"] + m["retries"] == sent and m["model_calls"] == report["calls"]["model_calls"]
        pairs = sum(1 for p in read_jsonl(tmp_path / run / "dataset" / "train.jsonl") if p["margin"] >= 0.1) + sum(
            1 for p in read_jsonl(tmp_path / run / "dataset" / "validation.jsonl") if p["margin"] >= 0.1)
        assert m["dpo_pairs_per_1k_calls"] == round(1000 * pairs / 40, 3)
    assert c["calls"] == {"model_calls": 0, "retries": 0, "reused_rollouts": 40}
    m = run_metrics(tmp_path / "c")
    assert m["model_calls"] == 0 and m["dpo_pairs_per_1k_calls"] is None  # no calls: no cost to divide by
