"""The 30-line script rollgen is measured against: tasks -> OpenAI endpoint -> math-verify -> JSONL.

    python bench/baseline_script.py URL TASKS.jsonl OUT.jsonl [--parallel 64] [--collect-only]

``--collect-only`` skips math-verify (reward None): the bare aiohttp loop, the floor of any collector built on it.
"""
import argparse, asyncio, json  # noqa: E401

import aiohttp
from math_verify import parse, verify


async def main(url: str, tasks: str, out: str, parallel: int, score: bool = True) -> None:
    rows = [json.loads(line) for line in open(tasks)]
    gate = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession() as session:
        async def one(task: dict) -> dict:
            async with gate:
                body = {"model": "m", "messages": [{"role": "user", "content": task["question"]}]}
                async with session.post(f"{url}/chat/completions", json=body) as resp:
                    reply = (await resp.json())["choices"][0]["message"]["content"]
            reward = float(verify(parse(task["answer"]), parse(reply))) if score else None
            return {"task_id": task["id"], "completion": reply, "reward": reward}
        results = await asyncio.gather(*(one(t) for t in rows))
    with open(out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in results)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url"), ap.add_argument("tasks"), ap.add_argument("out")
    ap.add_argument("--parallel", type=int, default=64), ap.add_argument("--collect-only", action="store_true")
    a = ap.parse_args()
    asyncio.run(main(a.url, a.tasks, a.out, a.parallel, not a.collect_only))
