"""Mean reward of a resource server's tasks against the fake endpoint, as the README's server table states it.

    python bench/servers.py code mcqa structured_output llm_judge tool_use [--correct-rate 0.5] [--repeats 1] [--limit N]

The fake (``tests/fakes.py``, in this process's thread) answers each task with its reference answer with
probability ``--correct-rate`` and with a typical wrong answer otherwise (``FakeOpenAI.pairs``):

* code: the reference solution in a ```python block / a function that returns None;
* mcqa: "The answer is (<gold letter>)." / another letter;
* structured_output: the gold object in a ```json block / the object with its first field changed;
* llm_judge: the reference answer / a vague non-answer, graded by a second fake as the judge, which knows each
  request's reference (``tests/test_server_llm_judge.py``'s ``fair_judge``: the reference wins, ties itself);
* tool_use: the task's expected calls, turn by turn (``FakeOpenAI.tool_script``), then the gold in ``\\boxed{}`` /
  the same calls, then ``\\boxed{0}``.

A full ``rollgen.run`` (sampler=ppo: every reward kept) per server; prints one JSON line per server with the
mean reward, the share of rollouts at 1, and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import serve_in_thread  # noqa: E402
from tests.fakes import FakeOpenAI  # noqa: E402


def _code(task: Any) -> tuple[str, str]:
    return f"```python\n{task.metadata['solution']}```", "```python\ndef nothing():\n    return None\n```"


def _mcqa(task: Any) -> tuple[str, str]:
    gold = str(task.answer)
    other = next(letter for letter in "ABCDEFGHIJ" if letter != gold)
    return f"The answer is ({gold}).", f"The answer is ({other})."


def _structured(task: Any) -> tuple[str, str]:
    gold = dict(task.answer)
    first = next(iter(gold))
    wrong = {**gold, first: None if gold[first] is not None else "x"}
    return f"```json\n{json.dumps(gold, indent=2)}\n```", json.dumps(wrong)


def _judged(task: Any) -> tuple[str, str]:
    return str(task.answer), "It depends on many things; there is no single answer to that."


def _tool_use(task: Any) -> tuple[str, str]:
    return f"The answer is \\boxed{{{task.answer}}}.", "I think it is \\boxed{0}."


def _tool_script(task: Any, answers: tuple[str, str]) -> list[Any]:
    """The expected calls of a tool_use task, turn by turn (each argument its first accepted value), then the
    (right, wrong) answer the fake draws from."""
    turns = [[{"name": name, "arguments": {p: next(v for v in vs if v != "") for p, vs in params.items()}}
              for call in turn for name, params in call.items()] for turn in task.metadata["expected_calls"]]
    return [*turns, answers]


REPLIES = {"code": _code, "mcqa": _mcqa, "structured_output": _structured, "llm_judge": _judged,
           "tool_use": _tool_use}


def measure(server: str, correct_rate: float, repeats: int, limit: int | None, overrides: list[str]) -> dict[str, Any]:
    import rollgen
    from rollgen.build import build
    from rollgen.rundir import read_jsonl

    base = [f"server={server}", *([f"limit={limit}"] if limit else []), *overrides]
    tasks = list(build(rollgen.compose(base, output_dir="x").server).tasks())
    pairs = {}
    for task in tasks:
        prompt = next(m["content"] for m in reversed(task.chat()) if m["role"] == "user")
        pairs[prompt] = REPLIES[server](task)
    fake = FakeOpenAI(pairs=pairs, correct_rate=correct_rate, seed=0)
    if server == "tool_use":  # the calls first, then the answer
        fake.pairs, fake.tool_script = {}, {
            next(m["content"] for m in reversed(t.chat()) if m["role"] == "user"): _tool_script(t, _tool_use(t))
            for t in tasks}
    judge = FakeOpenAI()
    if server == "llm_judge":
        from tests.test_server_llm_judge import fair_judge

        judge.reply_fn = fair_judge(tasks)
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(fake) as url, serve_in_thread(judge) as judge_url:
        out = Path(tmp) / "run"
        judged = [f"verifier.base_url={judge_url}"] if server == "llm_judge" else []
        cfg = rollgen.compose([*base, "sampler=ppo", f"sampler.num_repeats={repeats}", "policy=openai",
                               f"policy.base_url={url}", "progress=false", f"cache_dir={tmp}/cache", *judged],
                              output_dir=str(out))
        t0 = time.perf_counter()
        rollgen.run(cfg)
        elapsed = time.perf_counter() - t0
        rewards = [r["reward"] for r in read_jsonl(out / "rollouts.jsonl")]
    extra = {"judge_requests": judge.requests} if server == "llm_judge" else {}
    return {"server": server, **extra, "tasks": len(tasks), "rollouts": len(rewards), "correct_rate": correct_rate,
            "mean_reward": round(sum(rewards) / len(rewards), 4),
            "share_at_1": round(sum(r == 1.0 for r in rewards) / len(rewards), 4), "seconds": round(elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("servers", nargs="+", choices=sorted(REPLIES))
    ap.add_argument("--correct-rate", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--override", action="append", default=[], help="a config override for every server")
    args = ap.parse_args()
    for server in args.servers:
        print(json.dumps(measure(server, args.correct_rate, args.repeats, args.limit, args.override)), flush=True)


if __name__ == "__main__":
    main()
