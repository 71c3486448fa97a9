"""Reward accuracy on realistic replies: plain math-verify against rollgen's math verifier (alone, and behind
the guards as in a run), measured on hand-labelled replies (``tests/data/math_replies.jsonl``).

    python bench/rewards.py [--corpus tests/data/math_replies.jsonl] [--show]

A false positive is a reply labelled wrong that gets reward 1; a false negative, one labelled right that
does not. Prints one JSON line per scorer, then the counts by category. To measure another version of
rollgen, put its checkout first on PYTHONPATH (the corpus path defaults to this checkout's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "math_replies.jsonl"
INSTRUCTION = "\nPut your final answer within \\boxed{}."


def load(path: Path = CORPUS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def task_and_rollout(entry: dict[str, Any]) -> tuple[Any, Any]:
    """The task (question + the math server's instruction) and the rollout of one corpus entry."""
    from rollgen.records import Rollout, Task

    task = Task(id=entry["id"], messages=[{"role": "user", "content": entry["question"] + INSTRUCTION}],
                answer=entry["answer"], metadata={**entry["metadata"], "question": entry["question"]})
    status = "truncated" if entry["finish_reason"] == "length" else "ok"
    rollout = Rollout(id=f"{entry['id']}#0", task_id=entry["id"], repeat=0, messages=[], completion=entry["reply"],
                      finish_reason=entry["finish_reason"], status=status)
    return task, rollout


def plain_math_verify(entry: dict[str, Any]) -> float:
    """``verify(parse(gold), parse(reply))`` with math-verify's defaults: what a pipeline without rollgen does."""
    from math_verify import parse, verify

    gold = entry["answer"] if "$" in entry["answer"] or "\\boxed" in entry["answer"] else f"${entry['answer']}$"
    return float(verify(parse(gold, parsing_timeout=None), parse(entry["reply"], parsing_timeout=None),
                        timeout_seconds=None))


async def rollgen_rewards(entries: list[dict[str, Any]], guarded: bool) -> list[float]:
    """rollgen's math verifier on each entry; with ``guarded``, behind the default guards (a trip scores 0)."""
    from rollgen.config import GuardsConfig
    from rollgen.runtime import Runtime
    from rollgen.verifiers.guards import check
    from rollgen.verifiers.math import MathVerifier

    guards = GuardsConfig()
    out = []
    async with Runtime() as rt:
        verifier = await rt.attach(MathVerifier(MathVerifier.Params()))
        for entry in entries:
            task, rollout = task_and_rollout(entry)
            if guarded and check(guards, task, rollout):
                out.append(0.0)
                continue
            out.append((await verifier.verify(task, rollout)).reward)
    return out


def confusion(entries: list[dict[str, Any]], rewards: list[float]) -> dict[str, Any]:
    fp = [e["id"] for e, r in zip(entries, rewards) if not e["label"] and r >= 1.0]
    fn = [e["id"] for e, r in zip(entries, rewards) if e["label"] and r < 1.0]
    return {"false_positives": len(fp), "false_negatives": len(fn), "fp_ids": fp, "fn_ids": fn}


def evaluate(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Confusion counts of plain math-verify, rollgen's verifier alone and rollgen behind its guards."""
    return {
        "math_verify": confusion(entries, [plain_math_verify(e) for e in entries]),
        "rollgen_verifier": confusion(entries, asyncio.run(rollgen_rewards(entries, guarded=False))),
        "rollgen_guarded": confusion(entries, asyncio.run(rollgen_rewards(entries, guarded=True))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--show", action="store_true", help="list the ids of every false positive and negative")
    args = ap.parse_args()
    entries = load(args.corpus)
    import rollgen

    labels = Counter(e["label"] for e in entries)
    print(json.dumps({"rollgen": str(Path(rollgen.__file__).parent), "replies": len(entries),
                      "labelled_right": labels[1], "labelled_wrong": labels[0]}))
    results = evaluate(entries)
    category = {e["id"]: e["category"] for e in entries}
    for name, r in results.items():
        line = {"scorer": name, "false_positives": r["false_positives"], "false_negatives": r["false_negatives"],
                "fp_by_category": dict(Counter(category[i] for i in r["fp_ids"])),
                "fn_by_category": dict(Counter(category[i] for i in r["fn_ids"]))}
        if args.show:
            line.update(fp_ids=r["fp_ids"], fn_ids=r["fn_ids"])
        print(json.dumps(line))


if __name__ == "__main__":
    main()
