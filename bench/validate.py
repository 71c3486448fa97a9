"""``rollgen validate`` speed and accuracy: the math verifier on 1,000 reasoning-gym tasks x all renderings
and perturbations (guards on, verifier-alone scoring on), in-process and through the CLI.

    python bench/validate.py [--size 100] [--generators basic_arithmetic,chain_sum,...] [--repeat 3]

Prints one JSON line per measurement. Tasks are generated once into a temporary cache (not timed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATORS = ["basic_arithmetic", "chain_sum", "gsm_symbolic", "fraction_simplification", "decimal_arithmetic",
              "simple_equations", "products", "leg_counting", "gcd", "lcm"]


async def _gold(cfg, tasks):  # noqa: ANN001, ANN202 - rollgen is imported late (ROLLGEN_CACHE_DIR first)
    from rollgen.runtime import Runtime
    from rollgen.validation.gold import run_gold_validation

    async with Runtime(cache_dir=cfg.cache_dir) as rt:
        return await run_gold_validation(cfg, tasks, rt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=100, help="tasks per generator")
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ROLLGEN_CACHE_DIR"] = cache
        import rollgen
        from rollgen.build import build

        overrides = [f"server.generators=[{args.generators}]", f"server.size={args.size}", "server.generator_config={}"]
        cfg = rollgen.compose(overrides, output_dir=".")
        tasks = list(build(cfg.server).tasks())
        variants = {"default (guards + verifier alone)": [], "validate.verifier_alone=false": ["validate.verifier_alone=false"],
                    "guards=off": ["guards=off"]}
        for name, extra in variants.items():
            c = rollgen.compose(overrides + extra, output_dir=".")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                r = asyncio.run(_gold(c, tasks))
                dt = time.perf_counter() - t0
                print(json.dumps({"variant": name, "tasks": len(tasks), "cases": r["cases"], "seconds": round(dt, 2),
                                  "cases_per_s": round(r["cases"] / dt), "passed": r["passed"],
                                  "false_positive_rate": r["false_positive_rate"],
                                  "false_negative_rate": r["false_negative_rate"]}), flush=True)
        with tempfile.TemporaryDirectory() as out:
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "rollgen", "validate", *overrides, "--out", out],
                                   capture_output=True, text=True, check=False)
                dt = time.perf_counter() - t0
                print(json.dumps({"variant": "CLI, wall clock incl. start-up", "seconds": round(dt, 2),
                                  "exit": p.returncode, "line": p.stdout.splitlines()[0] if p.stdout else p.stderr[-200:]}),
                      flush=True)
            report = json.loads((Path(out) / "report.json").read_text())
            print(json.dumps({"guard_catches": report["guard_catches"], "guard_saves": report["guard_saves"]}))


if __name__ == "__main__":
    main()
