"""Engine benchmark against the fake OpenAI server running in another process (not a test).

    python bench/engine.py                 # all measurements, defaults below
    python bench/engine.py --quick         # smaller counts

Prints: rollouts/s and CPU ms per rollout of rollgen's own process at zero model latency (math
verification on), time from launch to the first rollout with policy=openai, peak RSS with 100,000
tasks streamed, and achieved concurrency at 100 ms latency (Little's law).
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

from tests.conftest import write_arith_tasks  # noqa: E402


class FakeProcess:
    """``tests/fakes.py`` in its own process, so its CPU is not counted as rollgen's."""

    def __init__(self, latency: float = 0.0):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakes.py"), "--latency", str(latency)],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def overrides(url: str, tasks: Path, parallel: int, out: Path) -> list[str]:
    return ["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
            f"sampler.num_samples_in_parallel={parallel}", "policy.max_retries=0", f"hydra.run.dir={out}"]


def in_process(url: str, tasks: Path, parallel: int, out: Path) -> dict:
    """Run in this process; CPU = process_time (all our threads, no other process)."""
    import rollgen

    cfg = rollgen.compose([o for o in overrides(url, tasks, parallel, out) if not o.startswith("hydra.")],
                          output_dir=str(out))
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = rollgen.run(cfg)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    n = report["collection"]["rollouts"]
    return {"rollouts": n, "ok": report["collection"]["by_status"].get("ok", 0), "wall_s": wall,
            "collect_s": report["collect_time_s"], "rollouts_per_s": n / report["collect_time_s"],
            "cpu_ms_per_rollout": 1000 * cpu / n, "mean_reward": report["collection"]["mean_reward"]}


def first_rollout(url: str, tasks: Path, out: Path) -> float:
    """Seconds from launching the CLI to the first line in rollouts.jsonl."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rollgen", *overrides(url, tasks, 8, out)], cwd=out.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = out / "rollouts.jsonl"
    try:
        while time.perf_counter() - t0 < 60:
            if path.exists() and path.stat().st_size > 0:
                return time.perf_counter() - t0
            if proc.poll() is not None:
                raise RuntimeError(f"rollgen exited with {proc.returncode} before writing a rollout")
            time.sleep(0.005)
        raise RuntimeError("no rollout within 60 s")
    finally:
        proc.wait(120)


def vm_rss_mb(pid: int) -> float | None:
    """Resident memory of a process now, from /proc, in MB (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss(url: str, tasks: Path, out: Path) -> tuple[float, float, float]:
    """(peak RSS MB during collection, peak RSS MB of the whole run, wall s) of a CLI run over ``tasks``.

    Collection ends when ``rollouts.jsonl`` holds a line per task; RSS is sampled from /proc until then,
    and the whole run's peak (quality's dedup index, dataset, report) comes from the child's rusage.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rollgen", *overrides(url, tasks, 64, out)], cwd=out.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    collecting, n_tasks, done, rollouts = 0.0, sum(1 for _ in open(tasks)), 0, out / "rollouts.jsonl"
    while proc.poll() is None and done < n_tasks:
        collecting = max(collecting, vm_rss_mb(proc.pid) or 0.0)
        if rollouts.exists():
            with open(rollouts, "rb") as f:
                done = sum(1 for _ in f)
        time.sleep(0.2)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"rollgen exited with status {status}")
    return collecting, usage.ru_maxrss / 1024, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    n_tput, n_rss, n_little = (5_000, 20_000, 2_000) if args.quick else (20_000, 100_000, 6_400)
    results: dict[str, object] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with FakeProcess(0.0) as url:
            r = in_process(url, write_arith_tasks(tmp / "tput.jsonl", n_tput), 64, tmp / "tput")
            results["zero_latency"] = r
            print(f"zero latency, parallel 64, {r['rollouts']} rollouts: {r['rollouts_per_s']:.0f} rollouts/s, "
                  f"{r['cpu_ms_per_rollout']:.3f} ms CPU/rollout (rollgen process), mean reward {r['mean_reward']}")
            starts = [first_rollout(url, write_arith_tasks(tmp / f"fr{i}.jsonl", 50), tmp / f"fr{i}") for i in range(3)]
            results["first_rollout_s"] = starts
            print(f"launch -> first rollout (policy=openai, CLI): {', '.join(f'{s:.2f}' for s in starts)} s")
            coll, rss, wall = peak_rss(url, write_arith_tasks(tmp / "rss.jsonl", n_rss), tmp / "rss")
            results["streamed"] = {"tasks": n_rss, "collection_peak_rss_mb": coll, "run_peak_rss_mb": rss,
                                   "wall_s": wall}
            print(f"{n_rss} tasks streamed through the CLI: peak RSS {coll:.0f} MB while collecting, "
                  f"{rss:.0f} MB for the whole run (quality, dataset, report), {wall:.1f} s")
        with FakeProcess(0.1) as url:
            r = in_process(url, write_arith_tasks(tmp / "little.jsonl", n_little), 64, tmp / "little")
            ideal = 64 / 0.1
            r["littles_law_ideal_per_s"] = ideal
            r["efficiency"] = r["rollouts_per_s"] / ideal
            results["latency_100ms_parallel_64"] = r
            print(f"100 ms latency, parallel 64: {r['rollouts_per_s']:.0f} rollouts/s of {ideal:.0f} ideal "
                  f"= {100 * r['efficiency']:.1f} % (achieved concurrency {r['rollouts_per_s'] * 0.1:.1f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
