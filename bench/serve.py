"""Requests/s and latency of ``POST /verify`` at concurrency 64: ``rollgen serve`` (math verifier), or any URL.

    python bench/serve.py [-n 5000] [-c 64] [--shape plain|gym]
    python bench/serve.py --url http://127.0.0.1:18126/verify --shape gym     # e.g. NeMo Gym's math_with_judge

Without ``--url`` it starts ``python -m rollgen serve server=math`` (this checkout first on PYTHONPATH) on a
free port over a file of arithmetic tasks, and stops it with SIGTERM after. The client (aiohttp, one
connection per in-flight request) runs in this process; every answer must be 200 with the right reward
(one request in three carries a wrong answer), anything else counts as an error. ``--shape gym`` sends
NeMo Gym's verify body (the task row + an OpenAI Responses ``response``), which both servers accept. Prints
one JSON line: n, concurrency, errors, wall s, requests/s, p50/p99/max ms, and the load average before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-serve-token-0123456789"


def _tasks(path: Path, n: int) -> list[dict[str, Any]]:
    rows = [{"id": f"t{i}", "question": f"Calculate {i % 17 + 1} + {i % 5 + 2}. Put the answer in \\boxed{{}}.",
             "answer": str(i % 17 + 1 + i % 5 + 2)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def _body(row: dict[str, Any], i: int, shape: str) -> tuple[bytes, float]:
    right = i % 3 != 0
    answer = row["answer"] if right else str(int(row["answer"]) + 1)
    text = f"Adding them gives \\boxed{{{answer}}}."
    if shape == "plain":
        body: dict[str, Any] = {"task_id": row["id"], "completion": text}
    else:
        body = {"responses_create_params": {"input": [{"role": "user", "content": row["question"]}]},
                "question": row["question"], "expected_answer": row["answer"],
                "response": {"id": "resp_1", "created_at": 1.0, "model": "policy", "object": "response",
                             "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                             "output": [{"type": "message", "id": "m1", "role": "assistant", "status": "completed",
                                         "content": [{"type": "output_text", "text": text, "annotations": []}]}]}}
    return json.dumps(body).encode(), 1.0 if right else 0.0


async def load(url: str, rows: list[dict[str, Any]], n: int, concurrency: int, shape: str) -> dict[str, Any]:
    import aiohttp

    bodies = [_body(rows[i % len(rows)], i, shape) for i in range(n)]
    latencies: list[float] = []
    errors = 0
    next_i = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), headers=headers) as s:
        async def worker() -> None:
            nonlocal next_i, errors
            while next_i < n:
                body, want = bodies[next_i]
                next_i += 1
                t = time.perf_counter()
                async with s.post(url, data=body) as r:
                    answer = await r.json(content_type=None)
                latencies.append(time.perf_counter() - t)
                if r.status != 200 or answer.get("reward") != want:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()

    def ms(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000, 1)

    return {"n": n, "concurrency": concurrency, "shape": shape, "errors": errors, "wall_s": round(wall, 2),
            "requests_per_s": round(n / wall), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0)}


def _start_rollgen(tasks: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "ROLLGEN_SERVE_TOKEN": TOKEN, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "rollgen", "serve", f"server.data_path={tasks}", "serve.port=0"],
                            env=env, stderr=subprocess.PIPE, text=True, cwd=tasks.parent)
    for line in proc.stderr:  # type: ignore[union-attr]
        if m := re.search(r"(http://[\d.]+:\d+) ", line):
            return proc, m.group(1) + "/verify"
    raise SystemExit(f"rollgen serve exited with {proc.wait()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5000, help="requests (default 5000)")
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--shape", choices=["plain", "gym"], default="plain")
    ap.add_argument("--url", help="bench this verify URL instead of starting rollgen serve")
    ap.add_argument("--warmup", type=int, default=200, help="requests sent first and not counted (default 200)")
    args = ap.parse_args()
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        rows = _tasks(Path(tmp) / "tasks.jsonl", 200)
        proc, url = (None, args.url) if args.url else _start_rollgen(Path(tmp) / "tasks.jsonl")
        try:
            if args.warmup:  # worker pools, connections
                asyncio.run(load(url, rows, args.warmup, args.concurrency, args.shape))
            result = asyncio.run(load(url, rows, args.n, args.concurrency, args.shape))
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    print(json.dumps({"server": "rollgen serve" if proc else args.url, **result, "loadavg_before": loadavg}))


if __name__ == "__main__":
    main()
