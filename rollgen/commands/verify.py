"""``rollgen verify RUN_DIR [OVERRIDES...]``: re-verify a run's rollouts with another verifier config.

No model calls: the completions in ``rollouts.jsonl`` are scored again (guards first, as in a run) with
the run's config plus the overrides (``verifier=judge``, ``verifier.timeout_s=30``, ``guards.max_chars=8000``;
``--config-dir`` adds a training repo's groups). Nothing is overwritten by default:

    rollouts.reverified.jsonl   every rollout, with the new reward, reward_details, verifier, status
    reverify_diff.jsonl         one line per changed rollout: id, before, after
    reverify.json, reverify.md  how many changed (up, down, to/from verifier_error), mean reward and pass
                                rate before and after, examples

``--replace`` then makes the new rewards the run's: ``rollouts.jsonl`` becomes the reverified file and
``run_config.json`` records the new verifier and guards; the first originals are kept as
``rollouts.original.jsonl`` and ``run_config.original.json`` (never overwritten by a later --replace).
Exit status: 0 done, 2 a usage or config error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rollgen.build import build, build_verifier
from rollgen.config import RunConfig
from rollgen.errors import ConfigError
from rollgen.metrics import passed

__all__ = ["main"]

REVERIFIED = "rollouts.reverified.jsonl"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rollgen verify", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("run_dir", type=Path)
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE")
    p.add_argument("--config-dir", "-cd", default=None, help="a directory of extra config groups (a training repo's)")
    p.add_argument("--replace", action="store_true", help="make the new rewards the run's (originals kept)")
    p.add_argument("--examples", type=int, default=10, help="changed rollouts shown in reverify.md/json")
    return p


def _bucket(r: float | None) -> str:
    return "error" if r is None else "1" if r >= 1.0 else "0" if r <= 0.0 else "partial"


class _Diff:
    def __init__(self, examples: int):
        self.n = self.rescored = self.changed = self.up = self.down = 0
        self.to_error = self.from_error = 0
        self.before: list[float] = []
        self.after: list[float] = []
        self.transitions: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []
        self.max_examples = examples

    def add(self, old: dict[str, Any], new: dict[str, Any], rescored: bool) -> dict[str, Any] | None:
        """Count one rollout; return its diff line when its reward or status changed."""
        self.n += 1
        if old.get("reward") is not None:
            self.before.append(old["reward"])
        if new.get("reward") is not None:
            self.after.append(new["reward"])
        if not rescored:
            return None
        self.rescored += 1
        r0, r1 = old.get("reward"), new.get("reward")
        if r0 == r1 and old.get("status") == new.get("status"):
            return None
        self.changed += 1
        self.transitions[f"{_bucket(r0)} -> {_bucket(r1)}"] += 1
        if r0 is not None and r1 is not None:
            self.up += r1 > r0
            self.down += r1 < r0
        self.to_error += new.get("status") == "verifier_error" and old.get("status") != "verifier_error"
        self.from_error += old.get("status") == "verifier_error" and new.get("status") != "verifier_error"

        def side(row: dict[str, Any]) -> dict[str, Any]:
            d = row.get("reward_details") or {}
            return {"reward": row.get("reward"), "status": row.get("status"), "verifier": row.get("verifier"),
                    "extracted": d.get("extracted"), **({"error": row["error"]} if row.get("error") else {})}

        line = {"id": old["id"], "task_id": old["task_id"], "before": side(old), "after": side(new)}
        if len(self.examples) < self.max_examples:
            self.examples.append({**line, "completion_tail": (old.get("completion") or "")[-200:]})
        return line

    def summary(self) -> dict[str, Any]:
        def mean(xs: list[float]) -> float | None:
            return round(sum(xs) / len(xs), 6) if xs else None

        def pass_rate(xs: list[float]) -> float | None:
            return round(sum(passed(x) for x in xs) / len(xs), 6) if xs else None

        return {"rollouts": self.n, "rescored": self.rescored, "changed": self.changed,
                "unchanged": self.rescored - self.changed, "not_rescored": self.n - self.rescored,
                "reward_up": self.up, "reward_down": self.down, "became_verifier_error": self.to_error,
                "recovered_from_verifier_error": self.from_error,
                "mean_reward_before": mean(self.before), "mean_reward_after": mean(self.after),
                "pass_rate_before": pass_rate(self.before), "pass_rate_after": pass_rate(self.after),
                "transitions": dict(sorted(self.transitions.items())), "examples": self.examples}


async def _reverify(run_dir: Path, cfg: RunConfig, examples: int) -> dict[str, Any]:
    from rollgen.jsonl import JsonlWriter, aread_jsonl
    from rollgen.rundir import RunDir
    from rollgen.runtime import Runtime
    from rollgen.verifiers.reverify import load_tasks, rescore, scorable

    rd = RunDir(run_dir)
    tasks = await asyncio.to_thread(load_tasks, run_dir)
    out_path, diff_path = run_dir / REVERIFIED, run_dir / "reverify_diff.jsonl"
    out = await asyncio.to_thread(JsonlWriter, out_path, "w")
    diffs = await asyncio.to_thread(JsonlWriter, diff_path, "w")
    diff = _Diff(examples)
    try:
        async with Runtime(cache_dir=cfg.cache_dir, connections=cfg.validation.concurrency, seed=cfg.seed) as rt:
            verifier = await rt.attach(build_verifier(cfg.verifier, cfg.guards))
            server = await asyncio.to_thread(build, cfg.server)  # its for_repeat: each repeat's task as shown
            async for old, new in rescore(aread_jsonl(rd.rollouts), tasks, verifier, cfg.validation.concurrency,
                                          server=server):
                new_row = new.model_dump(mode="json")
                out.write(json.dumps(new_row, ensure_ascii=False) + "\n")
                changed = diff.add(old, new_row, scorable(old))
                if changed is not None:
                    diffs.write(json.dumps(changed, ensure_ascii=False) + "\n")
    finally:
        await asyncio.to_thread(out.close)
        await asyncio.to_thread(diffs.close)
    return diff.summary()


def _replace(run_dir: Path, cfg: RunConfig) -> None:
    from rollgen.jsonl import write_json
    from rollgen.rundir import RunDir

    rd = RunDir(run_dir)
    original = run_dir / "rollouts.original.jsonl"
    if not original.exists():
        shutil.copy2(rd.rollouts, original)
    os.replace(run_dir / REVERIFIED, rd.rollouts)
    saved = json.loads(rd.config.read_text(encoding="utf-8"))
    config_original = run_dir / "run_config.original.json"
    if not config_original.exists():
        shutil.copy2(rd.config, config_original)
    fresh = cfg.model_dump(mode="json", by_alias=True)
    saved.update(verifier=fresh["verifier"], guards=fresh["guards"])
    write_json(rd.config, saved)


def _md(run_dir: Path, cfg: RunConfig, s: dict[str, Any], replaced: bool) -> str:
    lines = [f"# rollgen verify: `{run_dir}`", "",
             (f"verifier `{cfg.verifier.target}` · {s['rollouts']} rollouts, {s['rescored']} rescored, "
              f"**{s['changed']} changed** ({s['reward_up']} up, {s['reward_down']} down, "
              f"{s['became_verifier_error']} became verifier_error, {s['recovered_from_verifier_error']} recovered)"),
             "",
             "| | before | after |", "|---|---|---|",
             f"| mean reward | {s['mean_reward_before']} | {s['mean_reward_after']} |",
             f"| pass rate | {s['pass_rate_before']} | {s['pass_rate_after']} |", "",
             "Transitions (reward 0 / partial / 1 / error): "
             + (", ".join(f"{k}: {v}" for k, v in s["transitions"].items()) or "none"), "",
             (f"New rewards: `{'rollouts.jsonl (originals in rollouts.original.jsonl)' if replaced else REVERIFIED}`; "
              "one line per change in `reverify_diff.jsonl`."), ""]
    if s["examples"]:
        lines += ["## Examples", ""]
        for ex in s["examples"]:
            b, a = ex["before"], ex["after"]
            lines.append(f"- `{ex['id']}`: {b['reward']} ({b['verifier']}, extracted {b['extracted']!r}) → "
                         f"{a['reward']} ({a['verifier']}, extracted {a['extracted']!r}"
                         + (f", {a['error']}" if a.get("error") else "") + ")")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from rollgen.rundir import RunDir, RunDirBusy, RunDirLock
    from rollgen.verifiers.reverify import rerun_config

    ns = _parser().parse_intermixed_args(argv)
    run_dir: Path = ns.run_dir
    try:
        if not RunDir(run_dir).rollouts.is_file():
            raise ConfigError([f"{run_dir}: not a run directory with rollouts.jsonl"])
        cfg = rerun_config(run_dir, ns.overrides, ns.config_dir)
        with RunDirLock(run_dir):  # not while a run collects into this directory
            t0 = time.perf_counter()
            summary = asyncio.run(_reverify(run_dir, cfg, ns.examples))
            return _finish(run_dir, cfg, ns, summary, t0)
    except ConfigError as e:
        for line in e.lines:
            print(f"rollgen: config error: {line}", file=sys.stderr)
        return 2
    except RunDirBusy as e:
        print(f"rollgen verify: {e}", file=sys.stderr)
        return 2


def _finish(run_dir: Path, cfg: RunConfig, ns: argparse.Namespace, summary: dict[str, Any], t0: float) -> int:
    from rollgen.jsonl import write_json
    from rollgen.rundir import RunDir

    summary = {"run_dir": str(run_dir), "overrides": ns.overrides,
               "verifier": cfg.verifier.model_dump(mode="json", by_alias=True),
               "guards": cfg.guards.model_dump(mode="json"), "replaced": ns.replace,
               "elapsed_s": round(time.perf_counter() - t0, 3), **summary}
    if ns.replace:
        _replace(run_dir, cfg)
    write_json(run_dir / "reverify.json", summary)
    (run_dir / "reverify.md").write_text(_md(run_dir, cfg, summary, ns.replace), encoding="utf-8")
    print(f"rollgen verify: {summary['rescored']} of {summary['rollouts']} rollouts rescored with "
          f"{cfg.verifier.target}: {summary['changed']} changed ({summary['reward_up']} up, {summary['reward_down']} "
          f"down, {summary['became_verifier_error']} verifier errors); mean reward {summary['mean_reward_before']} -> "
          f"{summary['mean_reward_after']}")
    print(f"new rewards: {RunDir(run_dir).rollouts if ns.replace else run_dir / REVERIFIED}; diff: {run_dir / 'reverify.md'}")
    return 0
