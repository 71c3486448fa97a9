"""Cost of secret redaction (not a test): microseconds per rollout line, and a whole run with and without a key.

    python bench/redact.py            # 20,000 lines; a 5,000-rollout run each way
    python bench/redact.py --quick    # 2,000 lines; 1,000 rollouts

Every rollout line is redacted as it is written, and every policy response as it is parsed, once a secret
is registered (``OPENAI_API_KEY`` set). This prints the cost per line of a typical rollout (no secret in
it, and one that carries an echoed key), and rollouts/s and CPU ms per rollout of a run against the fake
server (in another process) with no key and with a key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import FakeProcess, in_process  # noqa: E402
from tests.conftest import write_arith_tasks  # noqa: E402

KEY = "sk-proj-4fQ9zR2mX7vL1pK8sT3wY6bN0cH5jD"


def line(leak: bool) -> str:
    text = "Let me compute. 3 + 4 = 7, so the answer is \\boxed{7}." * 8
    if leak:
        text = f"[auth: Bearer {KEY}] " + text
    return json.dumps({"id": "t1#0", "task_id": "t1", "repeat": 0, "messages": [
        {"role": "user", "content": "Calculate 3 + 4.\nPut your final answer within \\boxed{}."},
        {"role": "assistant", "content": text}], "completion": text, "reward": 1.0, "status": "ok",
        "usage": {"prompt_tokens": 20, "completion_tokens": 90}, "sampling": {"temperature": 0.7}})


def per_line_us(n: int) -> dict[str, float]:
    from rollgen.redact import Redactor

    empty, keyed = Redactor(), Redactor()
    keyed.register(KEY)
    out = {}
    for name, r, leak in (("no secret registered", empty, False), ("key registered, clean line", keyed, False),
                          ("key registered, line with the key", keyed, True)):
        text = line(leak)
        t0 = time.perf_counter()
        for _ in range(n):
            r.redact_json(text)
        out[name] = round(1e6 * (time.perf_counter() - t0) / n, 2)
    out["line_chars"] = len(line(False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    lines, rollouts = (2000, 1000) if args.quick else (20000, 5000)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as d, FakeProcess() as url:
        tmp = Path(d)
        os.environ["ROLLGEN_CACHE_DIR"] = str(tmp / "cache")
        # one task file per run (its path is part of the collection hash, so nothing is reused)
        in_process(url, write_arith_tasks(tmp / "warmup.jsonl", 200), 64, tmp / "warmup")
        results["run, no key"] = in_process(url, write_arith_tasks(tmp / "a.jsonl", rollouts), 64, tmp / "plain")
        os.environ["OPENAI_API_KEY"] = KEY  # the fake takes any key; rollgen now redacts every line
        results["run, key set"] = in_process(url, write_arith_tasks(tmp / "b.jsonl", rollouts), 64, tmp / "keyed")
    results["redact() per line, us"] = per_line_us(lines)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
