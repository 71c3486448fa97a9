"""Several endpoints (``policy.base_urls``): throughput with 1, 2 and 4 fake servers against the ideal (not a test).

    python bench/endpoints.py                       # 1, 2, 4 endpoints; defaults below
    python bench/endpoints.py --counts 1 2 --tasks-per-endpoint 640

Each fake (``tests/fakes.py``) runs in its own process and serves ``--slots`` requests at once with ``--latency``
seconds each (the rest queue, as a model server's batch does), so one endpoint saturates at slots / latency
requests/s and N endpoints at N times that (1 s per request by default, so that the fakes' and rollgen's CPU on
this 2-core machine is not what limits). rollgen sends ``--parallel`` requests at once (enough to fill every
slot of 4 endpoints); the ideal is min(N × slots, parallel) / latency. Prints one JSON line per N: rollouts/s, the
share of the ideal, and each endpoint's share of the requests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import write_arith_tasks  # noqa: E402


def fake(latency: float, slots: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakes.py"), "--latency", str(latency),
                             "--max-concurrency", str(slots)], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()  # type: ignore[union-attr]


def measure(n: int, args: argparse.Namespace, tmp: Path) -> dict:
    import rollgen

    procs = [fake(args.latency, args.slots) for _ in range(n)]
    try:
        urls = [u for _, u in procs]
        tasks = write_arith_tasks(tmp / f"tasks{n}.jsonl", args.tasks_per_endpoint * n)
        cfg = rollgen.compose(["policy=openai", f"policy.base_urls=[{','.join(urls)}]", f"server.data_path={tasks}",
                               "progress=false", "sampler.num_repeats=1", f"sampler.num_samples_in_parallel={args.parallel}",
                               "sampler.adaptive_concurrency=false", "policy.max_retries=0"],
                              output_dir=str(tmp / f"run{n}"))
        report = rollgen.run(cfg)
    finally:
        for p, _ in procs:
            p.terminate()
            p.wait(10)
    rate = report["rollouts_per_s"]
    ideal = min(n * args.slots, args.parallel) / args.latency
    return {"endpoints": n, "rollouts": report["collection"]["rollouts"], "rollouts_per_s": rate,
            "ideal_per_s": round(ideal, 1), "share_of_ideal": round(rate / ideal, 3),
            "requests_per_endpoint": [e["requests"] for e in report["endpoints"]],
            "p50_latency_s": [e["latency_p50_s"] for e in report["endpoints"]], "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per request at each fake")
    ap.add_argument("--slots", type=int, default=16, help="requests each fake serves at once")
    ap.add_argument("--parallel", type=int, default=64, help="sampler.num_samples_in_parallel")
    ap.add_argument("--tasks-per-endpoint", type=int, default=320, help="tasks per endpoint (N endpoints: N times as many)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ROLLGEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        for n in args.counts:
            print(json.dumps(measure(n, args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
