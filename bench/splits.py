"""Split leakage benchmark: repeated prompts in generated tasks, and validation rows whose prompt is in train.

    python bench/splits.py                          # server=math server.size=2000, sampler=dpo and sft, 4 repeats
    python bench/splits.py --size 500 --samplers dpo

For the default task source with ``--size`` tasks it counts the tasks whose prompt repeats an earlier
task's (user text, case and runs of whitespace ignored). Then, per sampler preset, it runs rollgen end
to end against the fake OpenAI server (``tests/fakes.py``, in a thread; half the answers right) with 4
repeats, and counts the validation rows whose prompt is also in train, by the same plain comparison (not
rollgen's own), and what ``rollgen dataset validate`` says. Works on any rollgen checkout (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _user_text(row: dict[str, Any]) -> str:
    msgs = row.get("prompt") if "prompt" in row else row.get("messages")
    if isinstance(msgs, str):
        return " ".join(msgs.casefold().split())
    text = " ".join(m["content"] for m in msgs or [] if m.get("role") == "user" and isinstance(m.get("content"), str))
    return " ".join(text.casefold().split())


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def repeated_prompts(overrides: list[str]) -> dict[str, int]:
    import rollgen
    from rollgen.build import build

    cfg = rollgen.compose(overrides, output_dir=".")
    texts = Counter(_user_text({"messages": t.chat()}) for t in build(cfg.server).tasks())
    n = sum(texts.values())
    return {"tasks": n, "distinct_prompts": len(texts), "tasks_repeating_an_earlier_prompt": n - len(texts)}


def leak(out: Path, sampler: str, overrides: list[str], repeats: int) -> dict[str, Any]:
    import rollgen
    from rollgen.formats.validate import validate
    from tests.conftest import serve_in_thread
    from tests.fakes import FakeOpenAI

    run = out / f"run-{sampler}"
    t0 = time.perf_counter()
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=1, varied=True)) as url:
        cfg = rollgen.compose([*overrides, "policy=openai", f"policy.base_url={url}", f"sampler={sampler}",
                               f"sampler.num_repeats={repeats}", "sampler.num_samples_in_parallel=64", "progress=false",
                               "quality.plots=false"], output_dir=str(run))
        rollgen.run(cfg)
    train = {_user_text(r) for r in _rows(run / "dataset" / "train.jsonl")}
    val = _rows(run / "dataset" / "validation.jsonl")
    leaked = sum(_user_text(r) in train for r in val)
    check = validate(run / "dataset")
    return {"sampler": sampler, "wall_s": round(time.perf_counter() - t0, 1),
            "train_rows": len(_rows(run / "dataset" / "train.jsonl")), "validation_rows": len(val),
            "validation_rows_with_prompt_in_train": leaked,
            "share": round(leaked / len(val), 3) if val else None,
            "dataset_validate": "ok" if check.ok else f"FAILED ({len(check.errors)} problems)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--samplers", default="dpo,sft")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another override (repeatable)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rollgen-bench-splits-") as d:
        os.environ.setdefault("ROLLGEN_CACHE_DIR", str(Path(d) / "cache"))
        overrides = ["server=math", f"server.size={args.size}", *args.set]
        print(json.dumps({"overrides": overrides, **repeated_prompts(overrides)}))
        for sampler in args.samplers.split(","):
            print(json.dumps(leak(Path(d), sampler, overrides, args.repeats)))


if __name__ == "__main__":
    main()
