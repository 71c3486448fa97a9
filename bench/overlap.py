"""A whole rollgen run against the 30-line script (``bench/baseline_script.py``), side by side (not a test).

    python bench/overlap.py                  # 20,000 tasks, 2 rounds each, alternating
    python bench/overlap.py --tasks 5000 --rounds 1

Both run as fresh processes against one fake OpenAI server (``tests/fakes.py``, its own process, zero
latency, parallel 64) on the same task file; the time is launch to exit. The script only collects and
scores with math-verify; rollgen does every stage (collect, verify, the default quality chain with
MinHash near-dedup, the SFT dataset, export, report and plots). Prints each round, the medians, the ratio,
and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import FakeProcess, overrides  # noqa: E402
from tests.conftest import write_arith_tasks  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s launch to exit, peak RSS MB) of ``cmd``; raises when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{cmd[:3]} exited with {status}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=64)
    args = ap.parse_args()
    env_py = sys.executable
    times: dict[str, list[float]] = {"script": [], "rollgen": []}
    print(f"load before: {open('/proc/loadavg').read().split()[:3]}")
    with tempfile.TemporaryDirectory() as tmp_s, FakeProcess(0.0) as url:
        tmp = Path(tmp_s)
        tasks = write_arith_tasks(tmp / "tasks.jsonl", args.tasks)
        for i in range(args.rounds):
            for name in ("script", "rollgen") if i % 2 == 0 else ("rollgen", "script"):
                if name == "script":
                    cmd = [env_py, str(ROOT / "bench" / "baseline_script.py"), url, str(tasks), str(tmp / f"s{i}.jsonl"),
                           "--parallel", str(args.parallel)]
                else:
                    cmd = [env_py, "-m", "rollgen", *overrides(url, tasks, args.parallel, tmp / f"r{i}"),
                           f"cache_dir={tmp / 'cache'}", "reuse_rollouts=false"]
                wall, rss = timed(cmd, tmp)
                times[name].append(wall)
                print(f"round {i + 1} {name:8s} {wall:7.2f} s  {args.tasks / wall:7.0f} tasks/s  peak RSS {rss:.0f} MB",
                      flush=True)
    s, r = statistics.median(times["script"]), statistics.median(times["rollgen"])
    print(f"median: script {s:.2f} s ({args.tasks / s:.0f}/s), rollgen whole run {r:.2f} s ({args.tasks / r:.0f}/s): "
          f"rollgen is {s / r:.2f}x the script")
    print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
