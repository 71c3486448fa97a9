"""Soak benchmark (not a test): long collection with injected faults, and kill -9 + resume, repeated.

    python bench/soak.py                  # 100,000 rollouts with 5 % faults; 20 kill -9 / resume rounds
    python bench/soak.py --rollouts 20000 --rounds 5

Checks exact counts and no duplicate ids; reports RSS of the rollgen process at the start and the end
of collection; for each round, kills the CLI at a random point with SIGKILL, re-runs the same command
and compares the set of rollout ids with the task set (what an uninterrupted run produces).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import vm_rss_mb  # noqa: E402  (bench/ is on sys.path when run as a script)
from tests.conftest import write_arith_tasks  # noqa: E402

FAULTS = "500=0.01,429=0.01,reset=0.01,nonjson=0.01,hang=0.005,partial=0.005"  # 5 % of requests


def fake(faults: str = "", latency: float = 0.0) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakes.py"), "--faults", faults,
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()  # type: ignore[union-attr]


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def soak(tmp: Path, n: int) -> None:
    proc, url = fake(FAULTS)
    tasks = write_arith_tasks(tmp / "soak.jsonl", n)
    env = {**os.environ, "ROLLGEN_CACHE_DIR": str(tmp / "cache")}
    t0 = time.perf_counter()
    run = subprocess.Popen([sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={url}",
                            f"server.data_path={tasks}", "progress=false", "sampler.num_samples_in_parallel=64",
                            "policy.request_timeout_s=2", "policy.max_retries=3", "policy.retry_backoff_s=0.01",
                            "hydra.run.dir=soak"], cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []  # RSS while collecting: from the first rollout until every rollout is written
    out = tmp / "soak" / "rollouts.jsonl"
    written = 0
    while run.poll() is None and written < n:
        if out.exists() and (r := vm_rss_mb(run.pid)) is not None:
            samples.append(r)
            with open(out, "rb") as f:
                written = sum(1 for _ in f)
        time.sleep(0.5)
    run.wait()
    wall = time.perf_counter() - t0
    proc.terminate()
    assert run.returncode == 0, run.stderr.read()  # type: ignore[union-attr]
    got = ids(out)
    report = json.loads((tmp / "soak" / "report.json").read_text())
    print(f"soak: {n} tasks with 5 % injected faults in {wall:.0f} s: {len(got)} rollouts, "
          f"{len(set(got))} distinct ids, by status {report['collection']['by_status']}")
    print(f"      RSS while collecting ({len(samples)} samples): start {samples[0]:.0f} MB, "
          f"end {samples[-1]:.0f} MB, max {max(samples):.0f} MB")
    assert len(got) == len(set(got)) == n


def kill_resume(tmp: Path, rounds: int, n: int) -> None:
    proc, url = fake("", latency=0.002)
    tasks = write_arith_tasks(tmp / "kr.jsonl", n)
    want = {f"t{i}#0" for i in range(n)}
    rng = random.Random(0)
    ok = 0
    for i in range(rounds):
        env = {**os.environ, "ROLLGEN_CACHE_DIR": str(tmp / f"cache{i}")}
        args = [sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={url}",
                f"server.data_path={tasks}", "progress=false", "sampler.num_samples_in_parallel=16"]
        first = subprocess.Popen([*args, f"hydra.run.dir=kr{i}a"], cwd=tmp, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = tmp / f"kr{i}a" / "rollouts.jsonl"
        while not out.exists():
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 2.0))
        first.send_signal(signal.SIGKILL)
        first.wait()
        before = len(out.read_bytes().splitlines())
        subprocess.run([*args, f"hydra.run.dir=kr{i}b"], cwd=tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got = ids(tmp / f"kr{i}b" / "rollouts.jsonl")
        torn = json.loads((tmp / f"kr{i}b" / "report.json").read_text())["resume"]["torn"]
        same = len(got) == len(set(got)) and set(got) == want
        ok += same
        print(f"round {i + 1:2d}: killed after {before:5d} lines ({torn} torn) -> resumed set == uninterrupted set: {same}")
    proc.terminate()
    print(f"kill -9 + resume: {ok}/{rounds} rounds gave exactly the uninterrupted id set")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--resume-tasks", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        soak(Path(tmp), args.rollouts)
        kill_resume(Path(tmp), args.rounds, args.resume_tasks)


if __name__ == "__main__":
    main()
