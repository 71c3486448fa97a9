"""Prompt deduplication on real generated tasks: does near_dedup merge different problems?

    python bench/dedup.py                     # basic_arithmetic, chain_sum, gsm_symbolic (2,000 each) + a template
    python bench/dedup.py --size 500 --sources chain_sum

Per source: tasks with the prompt the math server used to send (the question, then "Put your final answer
within \\boxed{}."), one rollout each with a seeded random reward, curated with ``exact_dedup`` and
``near_dedup`` on ``field: prompt`` (as ``quality=rl`` does) and the run's tasks file (gold answers).
From ``rejected.jsonl`` it counts the merges, the merges of tasks whose gold answers differ, and the
merges whose exact Jaccard similarity of word 5-gram shingles (computed here, plainly, not by rollgen) is
below the threshold. The template source is "Compute: a + b * c." with a, b, c drawn from 1-30.
Works on any rollgen checkout (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INSTRUCTION = "\nPut your final answer within \\boxed{}."
GENERATORS = {"basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
              "chain_sum": {}, "gsm_symbolic": {}}
_TOKEN = re.compile(r"[a-z0-9_\x80-\U0010ffff]+|[-+*/=<>^%$\\{}()\[\]|&~#@]")
_KEPT = re.compile(r"task (\S+)$")


def plain_jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        toks = _TOKEN.findall(text.lower())
        if len(toks) < n:
            return {tuple(toks)}
        return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y) if x | y else 1.0


def tasks_of(source: str, size: int, seed: int) -> list[dict[str, Any]]:
    if source == "template":
        rng = random.Random(seed)
        out = []
        for i in range(size):
            a, b, c = (rng.randint(1, 30) for _ in range(3))
            out.append({"id": f"template-{i}", "prompt": f"Compute: {a} + {b} * {c}." + INSTRUCTION, "answer": str(a + b * c)})
        return out
    import reasoning_gym

    ds = reasoning_gym.create_dataset(source, size=size, seed=seed, **GENERATORS[source])
    return [{"id": f"{source}-{i}", "prompt": e["question"] + INSTRUCTION, "answer": str(e["answer"])}
            for i, e in enumerate(ds)]


def measure(out: Path, source: str, tasks: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    from rollgen.config import QualityConfig
    from rollgen.quality import curate

    rng = random.Random(1)
    with open(out / "tasks.jsonl", "w") as tf, open(out / "rollouts.jsonl", "w") as rf:
        for t in tasks:
            tf.write(json.dumps(t) + "\n")
            reward = float(rng.random() < 0.5)
            completion = f"The answer is \\boxed{{{t['answer'] if reward else 'x'}}}."
            rf.write(json.dumps({"id": f"{t['id']}#0", "task_id": t["id"], "repeat": 0, "status": "ok", "reward": reward,
                                 "messages": [{"role": "user", "content": t["prompt"]},
                                              {"role": "assistant", "content": completion}],
                                 "completion": completion}) + "\n")
    cfg = QualityConfig.model_validate({"plots": False, "chain": ["exact_dedup", "near_dedup"], "filters": {
        "exact_dedup": {"field": "prompt"}, "near_dedup": {"field": "prompt", "threshold": threshold}}})
    t0 = time.perf_counter()
    result = curate(cfg, out / "rollouts.jsonl", out / "curated.jsonl", out / "rejected.jsonl", tasks=out / "tasks.jsonl")
    wall = time.perf_counter() - t0
    by_id = {t["id"]: t for t in tasks}
    counts = {"exact": 0, "exact_different_answers": 0, "near": 0, "near_different_answers": 0,
              "near_exact_jaccard_below_threshold": 0}
    examples = []
    for line in (out / "rejected.jsonl").read_text().splitlines():
        r = json.loads(line)
        dropped, kept = by_id[r["rollout"]["task_id"]], by_id[_KEPT.search(r["detail"]).group(1)]
        kind = "exact" if r["filter"] == "exact_dedup" else "near"
        counts[kind] += 1
        differ = dropped["answer"].strip() != kept["answer"].strip()
        counts[f"{kind}_different_answers"] += differ
        if kind == "near":
            j = plain_jaccard(dropped["prompt"], kept["prompt"])
            counts["near_exact_jaccard_below_threshold"] += j < threshold
            if differ and len(examples) < 2:
                examples.append({"dropped": dropped["prompt"][:90], "kept": kept["prompt"][:90], "jaccard": round(j, 2)})
    funnel_notes = {f["filter"]: f.get("notes", {}) for f in result.funnel}
    return {"source": source, "tasks": len(tasks), **counts, "curate_s": round(wall, 2), "notes": funnel_notes,
            "examples_of_different_answers_merged": examples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--sources", default="basic_arithmetic,chain_sum,gsm_symbolic,template")
    args = ap.parse_args()
    total = {"near": 0, "near_different_answers": 0, "exact_different_answers": 0}
    for source in args.sources.split(","):
        with tempfile.TemporaryDirectory(prefix="rollgen-bench-dedup-") as d:
            row = measure(Path(d), source, tasks_of(source, args.size, args.seed), args.threshold)
        for k in total:
            total[k] += row[k]
        print(json.dumps(row))
    print(json.dumps({"total": total}))


if __name__ == "__main__":
    main()
