"""The typed stage results and the report made of them: every key of report.json comes from the typed model, a
re-curated report keeps the run's collection, and rollouts.jsonl is read as few times as the stages need."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

import rollgen
from rollgen import engine, jsonl
from rollgen.commands.curate import recurate
from rollgen.metrics import run_metrics
from rollgen.results import REPORT_KEYS, Collection, Report
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


def _run(tmp_path: Path, *overrides: str) -> Path:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 12)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=3)) as url:
        rollgen.run(rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                     "progress=false", "sampler.num_repeats=3", "quality.min_reward_threshold=0.0",
                                     f"cache_dir={tmp_path / 'cache'}", *overrides],
                                    output_dir=str(tmp_path / "run")))
    return tmp_path / "run"


def _count_passes(monkeypatch: pytest.MonkeyPatch, path_name: str) -> list[Path]:
    """Every full pass over a file named ``path_name`` (every JSONL pass goes through ``rollgen.jsonl.lines``)."""
    seen: list[Path] = []
    real = jsonl.lines

    def counting(path: Any, **kw: Any) -> Any:
        if Path(path).name == path_name:
            seen.append(Path(path))
        return real(path, **kw)

    monkeypatch.setattr(jsonl, "lines", counting)
    return seen


def test_every_key_of_report_json_comes_from_the_typed_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Report] = []
    real = engine.write_report

    def keep(rd: Any, report: Report) -> dict[str, Any]:
        built.append(report)
        return real(rd, report)

    monkeypatch.setattr(engine, "write_report", keep)
    run = _run(tmp_path, "format=dpo", "sampler=dpo")
    on_disk = json.loads((run / "report.json").read_text())
    [report] = built
    assert set(on_disk) <= set(REPORT_KEYS)  # no key the typed model does not name
    assert on_disk == json.loads(json.dumps(report.to_json(), default=str))  # key for key, value for value
    assert list(on_disk) == list(report.to_json())  # in the model's order
    assert report.status == on_disk["status"] == "complete" and report.downstream
    c, cur, ds, ex = report.collection, report.curation, report.dataset, report.exports
    assert on_disk["collection"] == asdict(c.stats) and on_disk["collection"]["rollouts"] == 36
    assert on_disk["kept"] == {"rollouts": 36, "curated": cur.curated, "dataset_rows": ds.rows}
    assert on_disk["funnel"] == cur.funnel and on_disk["quality"] == cur.metrics
    assert on_disk["dataset"] == ds.splits and sum(ds.splits.values()) == ds.rows and on_disk["dataset_details"] == ds.details
    assert on_disk["export"] == ex.manifests and [e.name for e in ex.integrations] == list(on_disk["export"])
    assert on_disk["calls"] == asdict(c.calls) and on_disk["resume"] == asdict(c.resume)
    assert on_disk["pass_at_k"] == {k: {str(n): v for n, v in curve.items()} for k, curve in c.pass_at_k.items()}
    assert set(c.pass_at_k["pass@k"]) == {1, 2, 3}


def test_a_recurated_report_keeps_the_collection_and_redoes_the_rest(tmp_path: Path) -> None:
    run = _run(tmp_path)
    before = json.loads((run / "report.json").read_text())
    recurate(run, [])
    after = json.loads((run / "report.json").read_text())
    assert list(after) == [*before, "curated_with"]  # the same keys, in the same order
    assert {k: v for k, v in after.items() if k != "curated_with"} == before  # same rollouts, same config: same report

    recurate(run, ["quality.min_reward_threshold=1.0"])
    stricter = json.loads((run / "report.json").read_text())
    for key in ("status", "collection", "calls", "resume", "concurrency", "pass_at_k", "wall_time_s", "config_hash"):
        assert stricter[key] == before[key], key  # the collection as the run reported it
    assert stricter["kept"]["curated"] < before["kept"]["curated"]


def test_a_report_of_an_older_rollgen_keeps_its_own_keys(tmp_path: Path) -> None:
    run = _run(tmp_path)
    old = json.loads((run / "report.json").read_text())
    for key in ("calls", "concurrency", "first_rollout_s"):
        del old[key]
    old["from_an_older_version"] = {"kept": True}
    (run / "report.json").write_text(json.dumps(old))
    report = recurate(run, [])
    assert not {"calls", "concurrency", "first_rollout_s"} & set(report)  # not made up as null
    assert report["from_an_older_version"] == {"kept": True}  # an unknown key stays
    assert Collection.from_report(report).present == frozenset(
        {"resume", "bad_rows", "peak_in_flight", "collect_time_s", "rollouts_per_s", "endpoints"})
    assert run_metrics(run)["model_calls"] == 36  # without `calls`, compare counts the rollouts' turns


def test_rollouts_are_read_once_after_collection_besides_quality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One scan feeds the report's stats, pass@k, the dataset card and RL pass rates; quality's own two passes
    (filter, then copy) are the only others."""
    passes = _count_passes(monkeypatch, "rollouts.jsonl")
    run = _run(tmp_path, "format=rl", "sampler=ppo")
    rows = list(jsonl.read_jsonl(run / "dataset" / "train.jsonl"))
    assert rows and all(r["n_rollouts"] == 3 for r in rows)  # RL pass rates from the scan
    assert len(passes) == 3  # the scan, quality's two passes
    passes.clear()
    recurate(run, [])
    assert len(passes) == 3


def test_one_definition_of_pass_everywhere(tmp_path: Path) -> None:
    """A rollout passes when its reward reaches the threshold (1.0), within float rounding; no reward never passes.
    The report's pass rates, pass@k, the quality metrics' solved tasks and RL rows' n_passed all agree."""
    from rollgen import quality
    from rollgen.config import QualityConfig, RlFormat
    from rollgen.formats import build_dataset
    from rollgen.metrics import passed
    from rollgen.scan import scan_rollouts
    from tests.test_formats import make_run

    assert passed(1.0) and passed(0.9999999999999999) and not passed(0.99) and not passed(None)
    assert passed(0.5, 0.5) and not passed(0.49, 0.5)
    curated = make_run(tmp_path / "run", {0: [1.0, 0.9999999999999999], 1: [0.5, None], 2: [0.0, 1.0]})
    rollouts = tmp_path / "run" / "rollouts.jsonl"
    scan = scan_rollouts(rollouts)
    assert scan.stats.pass_rate == round(3 / 5, 6)  # of the 5 rollouts with a reward, 3 pass (0.999... does)
    assert scan.stats.task_pass_rate == round(2 / 3, 6)  # t0 and t2 were solved
    assert scan.curves.curves()["pass@k"][1] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert scan.task("t1") == (1, 0.5, 0.25, 0)  # the None reward is not scored
    q = quality.curate(QualityConfig(chain=["status"], plots=False), rollouts, tmp_path / "c.jsonl",
                       tmp_path / "r.jsonl").metrics["pass_rate"]
    assert (q["always_solved"], q["never_solved"], q["mixed"]) == (1, 1, 1)  # t0 always, t1 never, t2 sometimes
    build_dataset(RlFormat(pass_threshold=0.5, validation_fraction=0), curated, tmp_path / "ds", seed=0)
    rows = {r["task_id"]: r for r in jsonl.read_jsonl(tmp_path / "ds" / "train.jsonl")}
    assert {t: (r["n_rollouts"], r["n_passed"]) for t, r in rows.items()} == {"t0": (2, 2), "t1": (1, 1), "t2": (2, 1)}
