"""Benchmark the two ways of running the embedded model (a script, not a test).

(a) ``server``: ``LocalPolicy.serve()`` (llama_cpp.server in a child process) + plain aiohttp chat
    completions;
(b) ``inprocess``: ``llama_cpp.Llama`` in this process, ``create_chat_completion`` run in a worker thread.

For each: seconds from start to ready, latency of the first completion, and throughput (completions/s,
completion tokens/s, completion tokens per completion) for N identical short math prompts, sequentially
and with C requests in flight.

    python bench/local_policy.py [--n 10] [--concurrency 4] [--max-tokens 128] [--n-threads K]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rollgen.policy.local import LocalPolicy  # noqa: E402

PROMPT = "Calculate 3 + 4. Put your final answer within \\boxed{}."
MESSAGES = [{"role": "user", "content": PROMPT}]


@dataclass
class Run:
    wall_s: float
    completions: int
    tokens: int

    def row(self) -> str:
        avg = self.tokens / self.completions
        return f"{self.completions / self.wall_s:7.2f} {self.tokens / self.wall_s:7.1f} {avg:7.1f}"


@dataclass
class Result:
    name: str
    ready_s: float
    first_s: float
    sequential: Run
    concurrent: Run


async def measure(one: Callable[[], Awaitable[int]], n: int, concurrency: int) -> Run:
    """Run ``one()`` n times with at most ``concurrency`` in flight; ``one`` returns completion tokens."""
    sem = asyncio.Semaphore(concurrency)

    async def guarded() -> int:
        async with sem:
            return await one()

    t = time.perf_counter()
    tokens = await asyncio.gather(*(guarded() for _ in range(n)))
    return Run(time.perf_counter() - t, n, sum(tokens))


async def timed(one: Callable[[], Awaitable[int]]) -> float:
    t = time.perf_counter()
    await one()
    return time.perf_counter() - t


async def bench_server(args: argparse.Namespace) -> Result:
    policy = LocalPolicy(LocalPolicy.Params(n_threads=args.n_threads))
    t0 = time.perf_counter()
    async with policy.serve() as ep:
        ready_s = time.perf_counter() - t0
        headers = {"Authorization": f"Bearer {ep.api_key}"}
        body = {"model": ep.model, "messages": MESSAGES, "max_tokens": args.max_tokens,
                "temperature": args.temperature}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ep.request_timeout_s)) as s:

            async def one() -> int:
                async with s.post(f"{ep.base_url}/chat/completions", json=body, headers=headers) as r:
                    r.raise_for_status()
                    return (await r.json())["usage"]["completion_tokens"]

            first_s = await timed(one)
            seq = await measure(one, args.n, 1)
            conc = await measure(one, args.n, args.concurrency)
    return Result("server (llama_cpp.server + aiohttp)", ready_s, first_s, seq, conc)


async def bench_inprocess(args: argparse.Namespace) -> Result:
    t0 = time.perf_counter()
    from llama_cpp import Llama  # imported inside the timing: the server pays for it too

    model_path = LocalPolicy(LocalPolicy.Params()).model_file()
    threads = args.n_threads or os.cpu_count()
    # chat_format=None: the GGUF's own chat template, as the server uses
    llm = await asyncio.to_thread(Llama, model_path=str(model_path), n_ctx=2048, n_threads=threads,
                                  n_threads_batch=threads, chat_format=None, verbose=False)
    ready_s = time.perf_counter() - t0
    lock = threading.Lock()  # a Llama instance is not thread-safe: one completion at a time

    def complete() -> int:
        with lock:
            r = llm.create_chat_completion(messages=MESSAGES, max_tokens=args.max_tokens,
                                           temperature=args.temperature)
        return r["usage"]["completion_tokens"]

    async def one() -> int:
        return await asyncio.to_thread(complete)

    first_s = await timed(one)
    seq = await measure(one, args.n, 1)
    conc = await measure(one, args.n, args.concurrency)
    llm.close()
    return Result("in-process (llama_cpp.Llama in a thread)", ready_s, first_s, seq, conc)


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\n{args.n} x '{PROMPT}' max_tokens={args.max_tokens} temperature={args.temperature} "
          f"n_threads={args.n_threads or 'all'} ({os.cpu_count()} CPUs)")
    c = f"c={args.concurrency}"
    head = (f"{'approach':42} {'ready s':>8} {'1st s':>7} | {'seq c/s':>7} {'tok/s':>7} {'tok/c':>7} | "
            f"{c + ' c/s':>7} {'tok/s':>7} {'tok/c':>7}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.name:42} {r.ready_s:8.2f} {r.first_s:7.2f} | {r.sequential.row()} | {r.concurrent.row()}")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="completions per measurement")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--n-threads", type=int, default=None, help="default: all cores")
    ap.add_argument("--only", choices=["server", "inprocess"], default=None)
    args = ap.parse_args()
    results = []
    if args.only in (None, "server"):
        results.append(await bench_server(args))
    if args.only in (None, "inprocess"):
        results.append(await bench_inprocess(args))
    print_table(results, args)


if __name__ == "__main__":
    asyncio.run(main())
