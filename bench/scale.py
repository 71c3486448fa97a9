"""A whole run's time and peak memory against the number of rollouts (not a test).

    python bench/scale.py                               # 100k, 300k and 1M rollouts, the fake's plain replies
    python bench/scale.py --rollouts 100000 --varied    # one point, replies worded differently per request
    python bench/scale.py --rollouts 100000 --overlap false   # quality's first pass after collection

Each point is one CLI run (``python -m rollgen``, ``policy=openai``, parallel 64, 2 repeats per task) against
the fake OpenAI server in its own process at zero latency, right half the time: collect, verify, the default
quality chain (MinHash near-dedup included), the SFT dataset, export, report and plots. ``--distinct`` makes
every task's prompt different (``Calculate 1234 + 567.``), as a real dataset's are; without it the tasks
repeat 85 prompts (``tests.conftest.write_arith_tasks``). RSS is sampled from /proc every 0.2 s for the
rollgen process and all its descendants together (the quality follower and the forkserver that starts it
count). Prints wall time, when the last rollout was written (collection), the tail after it, the peak RSS
while collecting and after (with rollgen's and its descendants' shares at that moment, and when it was), each
process's own peak, and the load average.
"""

from __future__ import annotations

import argparse
import json
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


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (children of any of its threads: a process started from a worker
    thread is listed under that thread)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                kids = [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def tree_rss_mb(pid: int, peaks: dict[int, float] | None = None) -> dict[int, float]:
    """RSS of ``pid`` and each of its descendants now, MB; ``peaks`` keeps each process's highest seen."""
    now = {}
    for p in [pid, *descendants(pid)]:
        now[p] = vm_rss_mb(p) or 0.0
        if peaks is not None:
            peaks[p] = max(peaks.get(p, 0.0), now[p])
    return now


def write_distinct_tasks(path: Path, n: int) -> Path:
    """``n`` arithmetic tasks with different prompts (the fake solves them)."""
    with open(path, "w") as f:
        for i in range(n):
            a, b = 1000 + i, i % 997 + 3
            f.write(json.dumps({"id": f"t{i}", "question": f"Calculate {a} + {b}.", "answer": str(a + b)}) + "\n")
    return path


def point(n_rollouts: int, tmp: Path, url: str, distinct: bool, extra: list[str]) -> dict[str, float]:
    write = write_distinct_tasks if distinct else write_arith_tasks
    tasks = write(tmp / f"tasks{n_rollouts}.jsonl", n_rollouts // 2)
    out = tmp / f"run{n_rollouts}"
    cmd = [sys.executable, "-m", "rollgen", *overrides(url, tasks, 64, out), "sampler.num_repeats=2",
           f"cache_dir={tmp / 'cache'}", "reuse_rollouts=false", *extra]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    collecting = after = 0.0
    collected_s = None
    rollouts = out / "rollouts.jsonl"
    peaks: dict[int, float] = {}
    at_peak = (0.0, 0.0, 0.0)  # at the tree's peak after collection: rollgen's RSS, its descendants', s after collection
    at_main_peak = (0.0, 0.0, 0.0)  # the same at rollgen's own peak after collection
    while proc.poll() is None:
        now = tree_rss_mb(proc.pid, peaks)
        rss = sum(now.values())
        if collected_s is None and _lines(rollouts) < n_rollouts:
            collecting = max(collecting, rss)
        else:
            collected_s = collected_s or time.perf_counter() - t0
            split = (now[proc.pid], rss - now[proc.pid], time.perf_counter() - t0 - collected_s)
            if rss > after:
                after, at_peak = rss, split
            if split[0] > at_main_peak[0]:
                at_main_peak = split
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"rollgen exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    report = json.loads((out / "report.json").read_text())
    return {"rollouts": n_rollouts, "wall_s": wall, "collect_s": collected_s or wall, "rss_collecting_mb": collecting,
            "rss_after_mb": after, "load_before": load0, "load_after": os.getloadavg()[0],
            "curated": report["kept"].get("curated"), "rows": report["kept"].get("dataset_rows"),
            "peak_main_mb": peaks.get(proc.pid, 0.0), "at_peak": at_peak, "at_main_peak": at_main_peak,
            "peak_child_mb": max((v for k, v in peaks.items() if k != proc.pid), default=0.0)}


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
    ap.add_argument("--varied", action="store_true", help="the fake words each reply differently (a sampled model)")
    ap.add_argument("--distinct", action="store_true", help="every task a different prompt")
    ap.add_argument("--overlap", default="auto", help="quality.overlap (auto, true, false)")
    ap.add_argument("--dir", type=Path, default=None, help="keep the run dirs here (default: a temp dir)")
    args = ap.parse_args()
    fake_args = ["--correct-rate", "0.5", *(["--varied"] if args.varied else [])]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp_s:
        tmp = Path(tmp_s)
        fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakes.py"), *fake_args],
                                stdout=subprocess.PIPE, text=True)
        try:
            url = fake.stdout.readline().strip()  # type: ignore[union-attr]
            for n in args.rollouts:
                r = point(n, tmp, url, args.distinct, [f"quality.overlap={args.overlap}"])
                print(f"{n:>9,} rollouts: wall {r['wall_s']:6.1f} s (collection ~{r['collect_s']:.1f} s, then "
                      f"{r['wall_s'] - r['collect_s']:.1f} s), peak RSS {r['rss_collecting_mb']:.0f} MB while "
                      f"collecting, {r['rss_after_mb']:.0f} MB after (rollgen and its descendants: then rollgen "
                      f"{r['at_peak'][0]:.0f} + the rest {r['at_peak'][1]:.0f} MB, {r['at_peak'][2]:.1f} s after collection; at "
                      f"rollgen's own peak after collection {r['at_main_peak'][0]:.0f} + {r['at_main_peak'][1]:.0f} MB, "
                      f"{r['at_main_peak'][2]:.1f} s after; "
                      f"each alone at most: rollgen {r['peak_main_mb']:.0f} MB, a child {r['peak_child_mb']:.0f} MB); curated "
                      f"{r['curated']}, dataset rows {r['rows']}; load {r['load_before']:.1f} -> {r['load_after']:.1f}",
                      flush=True)
                for p in (tmp / f"run{n}").glob("*.jsonl"):
                    p.unlink()
        finally:
            fake.terminate()
            fake.wait(10)


if __name__ == "__main__":
    main()
