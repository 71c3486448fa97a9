"""``rollgen ray-run``: a run's shards as Ray tasks on a local ``ray.init(num_cpus=2)``, then merged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'; the verl extra brings it too)")

from rollgen.ray_run import ShardFailed, run_on_ray  # noqa: E402
from tests.conftest import serve_in_thread, write_arith_tasks  # noqa: E402
from tests.fakes import FakeOpenAI  # noqa: E402
from tests.test_shards import _rows, _run  # noqa: E402


@pytest.fixture
def local_ray() -> object:
    # Ray gives its raylet a fixed 30 s to register (ray/_private/node.py, Ray 2.60); on 2 busy cores that can
    # pass, so the start (not the test) is tried again, at most three times, after a clean shutdown.
    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception for this
            ray.shutdown()
            if "timed out during startup" not in str(e) or attempt == 2:
                raise
    try:
        yield ray
    finally:
        ray.shutdown()


def test_two_shards_on_ray_give_the_single_machine_dataset(tmp_path: Path, local_ray: object) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 24)
    whole = _run(tmp_path, "whole", tasks)
    with serve_in_thread(FakeOpenAI(alternate=True)) as url:
        overrides = ["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
                     "sampler=dpo", "sampler.num_repeats=2", "sampler.num_samples_in_parallel=1",
                     "format.validation_fraction=0.25", f"cache_dir={tmp_path / 'ray-cache'}"]
        report = run_on_ray(overrides, 2, tmp_path / "ray")
        # a shard that cannot start: named, with the exit code a run would give
        with pytest.raises(ShardFailed) as e:
            run_on_ray([*overrides, f"server.data_path={tmp_path / 'missing.jsonl'}"], 2, tmp_path / "ray2")
    merged = tmp_path / "ray" / "merged"
    assert report["merged"]["shard_count"] == 2 and report["collection"]["rollouts"] == 48
    assert _rows(merged) == _rows(whole) and _rows(merged)["train.jsonl"]
    shard_tasks = [sum(1 for _ in open(tmp_path / "ray" / f"shard-{i}" / "tasks.jsonl")) for i in (0, 1)]
    assert all(shard_tasks) and sum(shard_tasks) == 24
    assert json.loads((merged / "report.json").read_text())["calls"]["model_calls"] == 48
    assert e.value.code == 2 and len(e.value.lines) == 2 and "missing.jsonl" in e.value.lines[0]
