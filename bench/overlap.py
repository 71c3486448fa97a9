"""A whole rollgen run against the 30-line script (``bench/baseline_script.py``), side by side (not a test).

    python bench/overlap.py                  # 20,000 tasks, 2 rounds each, alternating
    python bench/overlap.py --tasks 5000 --rounds 1

Both run as fresh processes against one fake OpenAI server (``tests/fakes.py``, its own process, zero
latency, parallel 64) on the same task file; the time is launch to exit. The script only collects and
scores with math-verify; rollgen does every stage (collect, verify, the default quality chain with
MinHash near-dedup, the SFT dataset, export, report and plots). A third contender, ``bare``, is the script
with ``--collect-only``: the aiohttp loop alone, no scoring, the floor of any collector built on aiohttp
against this fake on this machine. Prints each round with the CPU seconds of the contender (its process and
the children it reaped) and of the fake during it, the medians, the ratio, and the load average.
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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall s launch to exit, peak RSS MB, CPU s incl. reaped children) of ``cmd``; raises when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{cmd[:3]} exited with {status}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=64)
    args = ap.parse_args()
    env_py = sys.executable
    names = ("script", "rollgen", "bare")
    times: dict[str, list[float]] = {name: [] for name in names}
    print(f"load before: {open('/proc/loadavg').read().split()[:3]}")
    fake = FakeProcess(0.0)
    with tempfile.TemporaryDirectory() as tmp_s, fake as url:
        tmp = Path(tmp_s)
        tasks = write_arith_tasks(tmp / "tasks.jsonl", args.tasks)
        script = [env_py, str(ROOT / "bench" / "baseline_script.py"), url, str(tasks)]
        for i in range(args.rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                if name == "rollgen":
                    cmd = [env_py, "-m", "rollgen", *overrides(url, tasks, args.parallel, tmp / f"r{i}"),
                           f"cache_dir={tmp / 'cache'}", "reuse_rollouts=false"]
                else:
                    cmd = [*script, str(tmp / f"{name}{i}.jsonl"), "--parallel", str(args.parallel)]
                    cmd += ["--collect-only"] if name == "bare" else []
                fake_cpu = cpu_s(fake.proc.pid)
                wall, rss, cpu = timed(cmd, tmp)
                fake_cpu = cpu_s(fake.proc.pid) - fake_cpu
                times[name].append(wall)
                print(f"round {i + 1} {name:8s} {wall:7.2f} s  {args.tasks / wall:7.0f} tasks/s  peak RSS {rss:4.0f} MB  "
                      f"CPU {cpu:6.2f} s ({1000 * cpu / args.tasks:.3f} ms a task), the fake's {fake_cpu:5.2f} s", flush=True)
    s, r, b = (statistics.median(times[name]) for name in names)
    print(f"median: script {s:.2f} s ({args.tasks / s:.0f}/s), rollgen whole run {r:.2f} s ({args.tasks / r:.0f}/s), "
          f"bare aiohttp loop {b:.2f} s ({args.tasks / b:.0f}/s): rollgen is {s / r:.2f}x the script, "
          f"{r / b:.2f}x the bare loop's time")
    print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
