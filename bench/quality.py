"""Quality-stage benchmark on synthetic rollouts (not a test).

    python bench/quality.py                  # 100,000 rollouts (25,000 tasks x 4), default chain
    python bench/quality.py --n 20000        # fewer
    python bench/quality.py --chain status,reward,near_dedup --plots
    python bench/quality.py --set filters.near_dedup.scheme=classic

Writes the rollouts (prompts of 40-80 words, completions of 250-450 words from a Zipf vocabulary, with
errors, truncations, refusals, loops, exact and near duplicates planted at known rates) and a tasks
file to a temp dir, then runs ``rollgen.quality.curate`` in a child process and reports its wall
time, rollouts/s and peak RSS (``ru_maxrss`` of the child), with the funnel, and the recall of the
planted duplicates: of the planted (copy, original) pairs that both reach the dedup filters, the share
where exact or near dedup dropped one of the two; and the near-dedup drops that were not planted.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RATES = {"error": 0.02, "truncated": 0.01, "refusal": 0.01, "loop": 0.01, "exact": 0.03, "near": 0.03}


class Writer:
    """Synthetic text with a Zipf(1) vocabulary of 20,000 words and sentence punctuation."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        vocab = [f"{self._word()}" for _ in range(20_000)]
        self.vocab = vocab
        weights = [1.0 / (i + 1) for i in range(len(vocab))]
        total, acc = sum(weights), 0.0
        self.cum = []
        for w in weights:
            acc += w / total
            self.cum.append(acc)

    def _word(self) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(self.rng.randint(2, 9)))

    def text(self, n: int) -> str:
        words = self.rng.choices(self.vocab, cum_weights=self.cum, k=n)
        for i in range(0, n, self.rng.randint(8, 20)):
            words[i] = words[i].capitalize()
            if i:
                words[i - 1] += "."
        return " ".join(words) + "."


def generate(out: Path, n: int, repeats: int = 4, seed: int = 0) -> None:
    w, rng = Writer(seed), random.Random(seed + 1)
    n_tasks = -(-n // repeats)
    planted = {}  # copy's row id -> [kind, original's row id]
    with open(out / "tasks.jsonl", "w") as tf, open(out / "rollouts.jsonl", "w") as rf:
        written = 0
        for t in range(n_tasks):
            prompt = w.text(rng.randint(40, 80)) + " Put your final answer within \\boxed{}."
            difficulty = rng.choice(["easy", "medium", "hard"])
            tf.write(json.dumps({"id": f"t{t}", "prompt": prompt, "answer": "7",
                                 "metadata": {"difficulty": difficulty, "domain": rng.choice(["algebra", "geometry"])}}) + "\n")
            p_solve = {"easy": 0.8, "medium": 0.5, "hard": 0.15}[difficulty]
            first = None
            for rep in range(repeats):
                if written == n:
                    break
                u, status, finish = rng.random(), "ok", "stop"
                cum = 0.0
                kind = "normal"
                for k, rate in RATES.items():
                    cum += rate
                    if u < cum:
                        kind = k
                        break
                reward = float(rng.random() < p_solve)
                completion = w.text(rng.randint(250, 450)) + f" The answer is \\boxed{{{7 if reward else 8}}}."
                if kind == "error":
                    status, completion, reward = "error", "", None
                elif kind == "truncated":
                    status, finish, reward = "truncated", "length", 0.0
                elif kind == "refusal":
                    completion, reward = "I'm sorry, but I can't help with that. " + completion[:200], 0.0
                elif kind == "loop":
                    completion = ("so we carry the one again and " * 60).strip()
                elif kind in ("exact", "near") and first is not None:
                    completion, reward, first_id = first
                    planted[f"t{t}#{rep}"] = [kind, first_id]
                    if kind == "near":
                        toks = completion.split()
                        for i in rng.sample(range(len(toks)), 3):
                            toks[i] = rng.choice(w.vocab)
                        completion = " ".join(toks)
                if first is None and status == "ok":
                    first = completion, reward, f"t{t}#{rep}"
                row = {"id": f"t{t}#{rep}", "task_id": f"t{t}", "repeat": rep,
                       "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
                       "completion": completion, "reward": reward,
                       "reward_details": {"extracted": "7", "expected": "7", "rule": "boxed", "method": "numeric"},
                       "verifier": "math", "status": status, "error": "HTTP 500" if status == "error" else None,
                       "finish_reason": finish, "latency_s": 0.5, "model": "bench",
                       "usage": {"prompt_tokens": int(len(prompt.split()) * 1.3),
                                 "completion_tokens": int(len(completion.split()) * 1.3)},
                       "sampling": {"temperature": 0.7}, "turns": 1, "config_hash": "bench", "schema_version": 1}
                rf.write(json.dumps(row) + "\n")
                written += 1
    (out / "planted.json").write_text(json.dumps(planted))


def recall(out: Path, chain: list[str]) -> dict:
    """Of the planted pairs whose two rows both reach the first dedup filter: how many it found (per kind)."""
    dedup = [name for name in chain if name in ("exact_dedup", "near_dedup")]
    if not dedup or not (out / "planted.json").is_file():
        return {}
    before = set(chain[:chain.index(dedup[0])])
    planted = json.loads((out / "planted.json").read_text())
    by = {}
    with open(out / "rejected.jsonl", "rb") as f:
        for line in f:
            r = json.loads(line)
            by[r["rollout"]["id"]] = r["filter"]
    out_stats = {}
    for kind in ("exact", "near"):
        pairs = [(c, o) for c, (k, o) in planted.items() if k == kind and by.get(c) not in before and by.get(o) not in before]
        found = sum(by.get(c) in dedup or by.get(o) in dedup for c, o in pairs)
        out_stats[kind] = {"pairs_reaching_dedup": len(pairs), "found": found,
                           "recall": round(found / len(pairs), 4) if pairs else None}
    involved = set(planted) | {o for _, o in planted.values()}
    out_stats["near_dedup_drops_not_planted"] = sum(f == "near_dedup" and i not in involved for i, f in by.items())
    return out_stats


def _nested(settings: list[str]) -> dict:
    """``["filters.near_dedup.scheme=classic"]`` -> ``{"filters": {"near_dedup": {"scheme": "classic"}}}``."""
    out: dict = {}
    for item in settings:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(value) if value[:1] in "[{0123456789" or value in ("true", "false") else value
    return out


def child(out: Path, chain: str | None, plots: bool, settings: list[str]) -> None:
    from rollgen.config import QualityConfig
    from rollgen.quality import curate, format_funnel

    cfg = QualityConfig.model_validate({"plots": plots, **({"chain": chain.split(",")} if chain else {}),
                                        **_nested(settings)})
    t0 = time.perf_counter()
    result = curate(cfg, out / "rollouts.jsonl", out / "curated.jsonl", out / "rejected.jsonl",
                    tasks=out / "tasks.jsonl")
    if plots:  # the report stage draws them from the result
        from rollgen.plots import write_plots

        write_plots(result, out / "plots")
    wall = time.perf_counter() - t0
    print(format_funnel(result.funnel, result.total, str(out / "rejected.jsonl")), file=sys.stderr)
    print(json.dumps({"rollouts": result.total, "curated": result.curated, "wall_s": round(wall, 2),
                      "cpu_s": round(time.process_time(), 2), "rollouts_per_s": round(result.total / wall),
                      "distinct": result.metrics["distinct"], "duplicates": result.metrics["duplicates"]}))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--chain", default=None, help="comma-separated filter names (default: quality=default's chain)")
    ap.add_argument("--plots", action="store_true", help="draw the plots too")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a quality setting, e.g. filters.near_dedup.scheme=classic (repeatable)")
    ap.add_argument("--dir", default=None, help="reuse or keep the generated files here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child), args.chain, args.plots, args.set)
        return
    out = Path(args.dir or tempfile.mkdtemp(prefix="rollgen-bench-quality-"))
    out.mkdir(parents=True, exist_ok=True)
    rollouts = out / "rollouts.jsonl"
    if not rollouts.is_file() or _count_lines(rollouts) != args.n:
        t0 = time.perf_counter()
        generate(out, args.n)
        size = (out / "rollouts.jsonl").stat().st_size
        print(f"generated {args.n} rollouts ({size / 1e6:.0f} MB, {size / args.n / 1e3:.1f} kB each) "
              f"in {time.perf_counter() - t0:.0f} s -> {out}", file=sys.stderr)
    cmd = [sys.executable, __file__, "--child", str(out), *(["--chain", args.chain] if args.chain else []),
           *(["--plots"] if args.plots else []), *(f"--set={x}" for x in args.set)]
    result = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    from rollgen.config import QualityConfig

    chain = args.chain.split(",") if args.chain else QualityConfig().chain
    result["planted_duplicates"] = recall(out, chain)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
