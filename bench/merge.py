"""Cost of ``rollgen merge``: shards collected against the fake, then merged in a child process (not a test).

    python bench/merge.py                      # 2 shards of 20,000 tasks x 1 repeat
    python bench/merge.py --shards 4 --tasks 40000

The shards are ordinary runs (``shard.index=i shard.count=N``, the fake server in its own process at zero
latency). The merge runs as ``python -m rollgen merge`` in a child process, so its CPU time and peak RSS are its
own. Prints one JSON line: rollouts, the merge's own pass (checks and copy: report.json's ``merged.time_s``, ``cpu_s``),
the stages after it (quality, format, export, report), wall, CPU and peak RSS of the child, µs per rollout, and the
load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import FakeProcess  # noqa: E402
from tests.conftest import write_arith_tasks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    import rollgen

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ROLLGEN_CACHE_DIR"] = str(tmp / "cache")
        tasks = write_arith_tasks(tmp / "tasks.jsonl", args.tasks)
        dirs = []
        with FakeProcess() as url:
            for i in range(args.shards):
                cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                       "progress=false", f"sampler.num_repeats={args.repeats}", "policy.max_retries=0",
                                       "sampler.num_samples_in_parallel=64", f"shard.index={i}",
                                       f"shard.count={args.shards}"], output_dir=str(tmp / f"shard-{i}"))
                rollgen.run(cfg)
                dirs.append(str(tmp / f"shard-{i}"))
        size = sum((Path(d) / "rollouts.jsonl").stat().st_size for d in dirs)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rollgen", "merge", *dirs, "--out", str(tmp / "merged")], check=True,
                       stdout=subprocess.DEVNULL, cwd=tmp, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = json.loads((tmp / "merged" / "report.json").read_text())
        n = report["collection"]["rollouts"]
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        own = report["merged"]["time_s"]
        print(json.dumps({
            "shards": args.shards, "rollouts": n, "rollouts_mb": round(size / 1e6, 1),
            "merge_pass_s": own, "merge_pass_cpu_s": report["merged"]["cpu_s"],
            "merge_pass_cpu_us_per_rollout": round(report["merged"]["cpu_s"] / n * 1e6, 1),
            "downstream_s": report["curated_with"]["time_s"],
            "downstream_us_per_rollout": round(report["curated_with"]["time_s"] / n * 1e6, 1),
            "child_wall_s": round(wall, 2), "child_cpu_s": round(cpu, 2),
            "child_cpu_us_per_rollout": round(cpu / n * 1e6, 1), "child_peak_rss_mb": round(after.ru_maxrss / 1024, 1),
            "load": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
