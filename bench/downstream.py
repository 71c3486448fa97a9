"""Everything after collection, at 100k / 300k / 1M rollouts: time and peak RSS (not a test).

    python bench/downstream.py                      # 100k, 300k, 1M rollouts
    python bench/downstream.py --rollouts 100000

Collection on 2 shared cores is the slow part of a whole run (``bench/scale.py``); this isolates what comes
after it, where memory used to grow with the run. A tiny real run against the fake server gives a run dir
(config, tasks); its rollouts are then replaced by N synthetic ones of the same shape as the fake's with
``--varied`` (tasks "Calculate a + b.", 2 repeats, replies worded differently, right half the time, scored as
the math verifier scores them), and ``python -m rollgen curate RUN_DIR`` runs the stages after collection
(the scan, the default quality chain with MinHash near-dedup, the SFT dataset, export, report, plots) in a
child process: its wall time, CPU time and peak RSS (``ru_maxrss``), with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import FakeProcess, overrides  # noqa: E402
from tests.conftest import write_arith_tasks  # noqa: E402
from tests.fakes import OPENINGS  # noqa: E402


def synthetic(run: Path, n_rollouts: int, seed: int = 0) -> None:
    """Replace ``run``'s tasks and rollouts with ``n_rollouts`` (2 per task) shaped like the fake's."""
    template = json.loads((run / "rollouts.jsonl").read_text().splitlines()[0])
    rng = random.Random(seed)
    n_tasks = n_rollouts // 2
    write_arith_tasks(run / "tasks.jsonl", n_tasks)
    with open(run / "rollouts.jsonl", "w") as f:
        for i in range(n_tasks):
            a, b = i % 17 + 1, i % 5 + 2
            prompt = template["messages"][0]["content"].replace(template["messages"][0]["content"].split(".")[0],
                                                                 f"Calculate {a} + {b}", 1)
            for r in range(2):
                right = rng.random() < 0.5
                said = a + b if right else a + b + 1
                text = (f"{rng.choice(OPENINGS)} {rng.randint(1, 10**6)}: "
                        + (f"the answer is \\boxed{{{said}}}." if right else f"I think it is \\boxed{{{said}}}."))
                row = dict(template, id=f"t{i}#{r}", task_id=f"t{i}", repeat=r, completion=text,
                           messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": text}],
                           reward=1.0 if right else 0.0,
                           reward_details=dict(template["reward_details"], extracted=str(said), expected=str(a + b)))
                f.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--keep", type=Path, help="make the run dirs here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = args.keep or Path(tmp_s)
        tmp.mkdir(parents=True, exist_ok=True)
        seed_run = tmp / "seed"
        if not (seed_run / "run_config.json").is_file():
            with FakeProcess(0.0) as url:
                subprocess.run([sys.executable, "-m", "rollgen", *overrides(url, write_arith_tasks(tmp / "t.jsonl", 20),
                                                                             8, seed_run),
                                "sampler.num_repeats=2", f"cache_dir={tmp / 'cache'}", "reuse_rollouts=false"],
                               cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for n in args.rollouts:
            run = tmp / f"run{n}"
            if not (run / "rollouts.jsonl").is_file() or sum(1 for _ in open(run / "rollouts.jsonl")) != n:
                shutil.rmtree(run, ignore_errors=True)
                shutil.copytree(seed_run, run, ignore=shutil.ignore_patterns("dataset", "export", "plots", ".rollgen.lock"))
                synthetic(run, n)
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "rollgen", "curate", str(run)], cwd=tmp,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            if status:
                raise RuntimeError(proc.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
            report = json.loads((run / "report.json").read_text())
            print(f"{n:>9,} rollouts: wall {wall:6.1f} s, CPU {usage.ru_utime + usage.ru_stime:6.1f} s, peak RSS "
                  f"{usage.ru_maxrss / 1024:4.0f} MB; curated {report['kept']['curated']}, dataset rows "
                  f"{report['kept']['dataset_rows']}; load {load0:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
