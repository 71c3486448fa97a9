"""Code-sandbox throughput: honest solutions through the code verifier, one after another and at the
verifier's concurrency (``max_concurrency: null`` = one sandbox per CPU).

    python bench/sandbox.py [--n 60] [--repeat 3] [--isolation namespaces|rlimits]

Two workloads: four assert tests (one sandbox execution per verification) and three stdin/stdout cases
(one execution per case). Prints one JSON line per measurement: verifications/s, executions/s, wall and
CPU per execution (rollgen plus the sandboxes it reaped, ``RUSAGE_CHILDREN``), and each of the two per
verification. It uses only the verifier's
public API and the parameters every version has, so ``PYTHONPATH=<another checkout>`` measures that one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time

from rollgen.records import Rollout, Task
from rollgen.runtime import Runtime
from rollgen.verifiers.code import CodeTests

SOLUTION = ("```python\ndef add(a, b):\n    return a + b\n\n"
            "if __name__ == '__main__':\n    print(sum(map(int, input().split())))\n```")
WORKLOADS = {
    "asserts": (["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4",
                 "assert add(0, 0) == 0"], 1),
    "stdin_stdout": ([{"input": "1 2\n", "output": "3"}, {"input": "5 5\n", "output": "10"},
                      {"input": "0 1\n", "output": "1"}], 3),
}


def cpu_s() -> tuple[float, float]:
    """CPU seconds of rollgen itself and of the sandbox processes it has reaped."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


async def measure(workload: str, n: int, concurrency: int | None, extra: dict) -> dict:
    tests, per_verification = WORKLOADS[workload]
    task = Task(id="t", prompt="add", metadata={"tests": tests})
    rollout = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=SOLUTION, status="ok")
    async with Runtime() as rt:
        verifier = await rt.attach(CodeTests(CodeTests.Params.model_validate({"max_concurrency": concurrency, **extra})))
        await verifier.verify(task, rollout)  # warm-up: interpreter pages, namespace setup paths
        c0, t0 = cpu_s(), time.perf_counter()
        if concurrency == 1:
            verdicts = [await verifier.verify(task, rollout) for _ in range(n)]
        else:
            verdicts = await asyncio.gather(*(verifier.verify(task, rollout) for _ in range(n)))
        wall, (own, kids) = time.perf_counter() - t0, (b - a for a, b in zip(c0, cpu_s()))
    assert all(v.reward == 1.0 for v in verdicts), verdicts[0].details
    executions = n * per_verification
    return {"workload": workload, "concurrency": concurrency or os.cpu_count(), "verifications": n,
            "verifications_per_s": round(n / wall, 1), "executions_per_s": round(executions / wall, 1),
            "wall_ms_per_execution": round(1000 * wall / executions, 1),
            "cpu_ms_per_execution": round(1000 * (own + kids) / executions, 1),
            "rollgen_cpu_ms_per_verification": round(1000 * own / n, 1),
            "sandbox_cpu_ms_per_verification": round(1000 * kids / n, 1),
            "isolation": verdicts[0].details.get("isolation", "rlimits (+unshare -rn)"),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60, help="verifications per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--isolation", choices=["namespaces", "rlimits"], help="omit for the version's default")
    args = ap.parse_args()
    extra = {"isolation": args.isolation} if args.isolation else {}
    for _ in range(args.repeat):
        for workload in WORKLOADS:
            for concurrency in (1, None):
                print(json.dumps(asyncio.run(measure(workload, args.n, concurrency, extra))), flush=True)


if __name__ == "__main__":
    main()
