"""A whole run's time and peak memory against the number of rollouts (not a test).

    python bench/scale.py                       # 100k, 300k and 1M rollouts
    python bench/scale.py --rollouts 100000     # one point

Each point is one CLI run (``python -m rollgen``, ``policy=openai``, parallel 64, 2 repeats per task) against
the fake OpenAI server in its own process at zero latency, replies worded differently per request (as a
sampled model's are) and right half the time: collect, verify, the default quality chain (MinHash near-dedup
included), the SFT dataset, export, report and plots. RSS is sampled from /proc every 0.5 s for the rollgen
process and its children together (a worker pool counts); the peak of each process alone comes from its
rusage. Prints the peak while collecting, the peak after, the wall time, and the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import overrides, vm_rss_mb  # noqa: E402
from tests.conftest import write_arith_tasks  # noqa: E402


def tree_rss_mb(pid: int) -> float:
    """RSS of ``pid`` and its children now, MB."""
    total = vm_rss_mb(pid) or 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(vm_rss_mb(int(c)) or 0.0 for c in children)


def point(n_rollouts: int, tmp: Path, url: str) -> dict[str, float]:
    tasks = write_arith_tasks(tmp / f"tasks{n_rollouts}.jsonl", n_rollouts // 2)
    out = tmp / f"run{n_rollouts}"
    cmd = [sys.executable, "-m", "rollgen", *overrides(url, tasks, 64, out), "sampler.num_repeats=2",
           f"cache_dir={tmp / 'cache'}", "reuse_rollouts=false"]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    collecting = after = 0.0
    collected_s = None
    rollouts = out / "rollouts.jsonl"
    while proc.poll() is None:
        rss = tree_rss_mb(proc.pid)
        if collected_s is None and (out / "report.json").exists() is False and _lines(rollouts) < n_rollouts:
            collecting = max(collecting, rss)
        else:
            collected_s = collected_s or time.perf_counter() - t0
            after = max(after, rss)
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"rollgen exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return {"rollouts": n_rollouts, "wall_s": wall, "collect_s": collected_s or wall, "rss_collecting_mb": collecting,
            "rss_after_mb": after, "load_before": load0, "load_after": os.getloadavg()[0]}


_counted: dict[Path, tuple[int, int]] = {}


def _lines(path: Path) -> int:
    """Lines in ``path`` so far, counted incrementally (only the bytes added since the last call)."""
    size0, n = _counted.get(path, (0, 0))
    try:
        with open(path, "rb") as f:
            f.seek(size0)
            data = f.read()
    except OSError:
        return 0
    n += data.count(b"\n")
    _counted[path] = (size0 + len(data), n)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakes.py"), "--varied", "--correct-rate", "0.5"],
                                stdout=subprocess.PIPE, text=True)
        try:
            url = fake.stdout.readline().strip()  # type: ignore[union-attr]
            for n in args.rollouts:
                r = point(n, tmp, url)
                print(f"{n:>9,} rollouts: wall {r['wall_s']:6.1f} s (collection ~{r['collect_s']:.1f} s), peak RSS "
                      f"{r['rss_collecting_mb']:.0f} MB while collecting, {r['rss_after_mb']:.0f} MB after "
                      f"(rollgen and its children); load {r['load_before']:.1f} -> {r['load_after']:.1f}", flush=True)
                for p in (tmp / f"run{n}").glob("*.jsonl"):
                    p.unlink()
        finally:
            fake.terminate()
            fake.wait(10)


if __name__ == "__main__":
    main()
