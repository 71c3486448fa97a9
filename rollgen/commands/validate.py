"""``rollgen validate``: check a verifier before spending GPU hours, or check a collected run's rewards.

    rollgen validate [OVERRIDES...]                      gold answers / renderings / perturbations, no model
    rollgen validate RUN_DIR [OVERRIDES...] [--against OVERRIDES...]
                                                         a run's reward distribution; with --against, the
                                                         agreement (Cohen's kappa) of two verifiers on it
                                                         (A: the recorded rewards, or re-scored when the
                                                         overrides change verifier or guards; B: --against)

Overrides are Hydra-style (``verifier=exact``, ``server.size=1000``, ``validate.max_false_negative_rate=0.05``,
``guards=off``); ``--config-dir DIR`` adds a training repo's config groups. Writes ``report.md`` and
``report.json`` to ``--out`` (default: ``validate.output_dir``, else ``outputs/validate/<date>/<time>``, or
``RUN_DIR/validate`` for a run). Exit status: 0 pass, 1 a rate over its threshold (or kappa under
``validate.min_kappa``), 2 a usage or config error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

from rollgen.build import build, build_verifier
from rollgen.config import RunConfig
from rollgen.errors import ConfigError
from rollgen.runtime import Runtime

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rollgen validate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("args", nargs="*", metavar="[RUN_DIR] OVERRIDE", help="a run directory (optional), then overrides")
    p.add_argument("--against", nargs="+", default=None, metavar="OVERRIDE",
                   help="run mode: the second verifier's overrides (e.g. verifier=judge); goes last")
    p.add_argument("--config-dir", "-cd", default=None, help="a directory of extra config groups (a training repo's)")
    p.add_argument("--out", default=None, help="where report.md and report.json go")
    return p


def _split(args: list[str]) -> tuple[Path | None, list[str]]:
    if args and "=" not in args[0]:
        run_dir = Path(args[0])
        if not (run_dir / "rollouts.jsonl").is_file():
            raise ConfigError([f"{run_dir}: not a run directory with rollouts.jsonl (overrides look like key=value)"])
        return run_dir, args[1:]
    return None, args


def main(argv: list[str]) -> int:
    ns = _parser().parse_intermixed_args(argv)
    try:
        run_dir, overrides = _split(ns.args)
        if run_dir is None:
            if ns.against:
                raise ConfigError(["--against compares verifiers on a run: give RUN_DIR first"])
            return _gold(overrides, ns.config_dir, ns.out)
        return _run(run_dir, overrides, ns.against, ns.config_dir, ns.out)
    except ConfigError as e:
        for line in e.lines:
            print(f"rollgen: config error: {line}", file=sys.stderr)
        return 2


def _gold(overrides: list[str], config_dir: str | None, out_arg: str | None) -> int:
    from rollgen.composer import compose

    cfg = compose(overrides, config_dir=config_dir, output_dir=".")
    out = Path(out_arg or cfg.validation.output_dir or time.strftime("outputs/validate/%Y-%m-%d/%H-%M-%S"))
    return asyncio.run(_agold(cfg, out))


async def _agold(cfg: RunConfig, out: Path) -> int:
    from rollgen.servers.prompts import prompt_checks
    from rollgen.validation.gold import run_gold_validation, write_gold_report

    async with Runtime(cache_dir=cfg.cache_dir, connections=cfg.validation.concurrency, seed=cfg.seed) as rt:
        server = await rt.attach(build(cfg.server))
        try:
            tasks = await asyncio.to_thread(lambda: list(islice(server.tasks(), cfg.limit)))
        except (ValueError, OSError) as e:
            print(f"rollgen: cannot read the tasks: {e}", file=sys.stderr)
            return 2
        if not tasks:
            print("rollgen: the server has no tasks", file=sys.stderr)
            return 2
        report = await run_gold_validation(cfg, tasks, rt)
    if report["cases"] == 0:
        print(f"rollgen: none of the {len(tasks)} tasks has a gold answer (task.answer) to validate against, and "
              f"the verifier brings no validation_cases", file=sys.stderr)
        return 2
    report["server"] = cfg.server.model_dump(mode="json", by_alias=True)
    report["prompts"] = prompt_checks(tasks, server.added_text())
    report["warnings"] = _prompt_warnings(report["prompts"])
    await asyncio.to_thread(write_gold_report, report, out)
    verdict = "PASS" if report["passed"] else "FAIL"
    print(f"rollgen validate: {verdict}: {report['tasks']} tasks, {report['cases']} cases in {report['elapsed_s']} s; "
          f"false-positive rate {report['false_positive_rate']}, false-negative rate {report['false_negative_rate']}")
    for line in report["problems"]:
        print(f"  {line}")
    if report.get("verifier_note"):
        print(f"  {report['verifier_note']}")
    for line in report["warnings"]:
        print(f"  warning: {line}")
    print(f"report: {out / 'report.md'}")
    return 0 if report["passed"] else 1


def _prompt_warnings(p: dict[str, Any]) -> list[str]:
    """What ``servers.prompts.prompt_checks`` found that a user should fix before collecting."""
    eg = p["examples"]
    out = []
    if p["instruction_twice"]:
        out.append(f"{p['instruction_twice']} of {p['tasks']} prompts carry a final-answer instruction twice (e.g. "
                   f"{', '.join(eg['instruction_twice'])}): the server's instruction was appended after their own; "
                   "see `rollgen tasks preview`, set server.instruction=null or drop it from server.prompt_template")
    if p["tasks_repeating_a_prompt"]:
        out.append(f"{p['tasks_repeating_a_prompt']} of {p['tasks']} tasks repeat an earlier task's prompt (e.g. "
                   f"{', '.join(eg['tasks_repeating_a_prompt'])}); splits keep them together, "
                   "server.unique_prompts=true drops them")
    return out


async def _rescored(run_dir: Path, cfg: RunConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from rollgen.verifiers.reverify import load_tasks, rescore

    tasks = await asyncio.to_thread(load_tasks, run_dir)
    async with Runtime(cache_dir=cfg.cache_dir, connections=cfg.validation.concurrency, seed=cfg.seed) as rt:
        verifier = await rt.attach(build_verifier(cfg.verifier, cfg.guards))
        server = await asyncio.to_thread(build, cfg.server)  # its for_repeat: each repeat's task as shown
        return [new.model_dump(mode="json") async for _, new in
                rescore(rows, tasks, verifier, cfg.validation.concurrency, server=server)]


def _run(run_dir: Path, overrides: list[str], against: list[str] | None, config_dir: str | None,
         out_arg: str | None) -> int:
    from rollgen.jsonl import read_jsonl, write_json
    from rollgen.rundir import RunDir
    from rollgen.validation.runcheck import agreement, reward_stats
    from rollgen.verifiers.reverify import rerun_config

    cfg = rerun_config(run_dir, overrides, config_dir)
    cfg_b = rerun_config(run_dir, against, config_dir) if against else None
    rows = list(read_jsonl(RunDir(run_dir).rollouts))
    # Verifier A is the recorded rewards unless an override changes the verifier or the guards.
    rescore_a = any(o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] in ("verifier", "guards") for o in overrides)
    rows_a = asyncio.run(_rescored(run_dir, cfg, rows)) if rescore_a else rows
    report: dict[str, Any] = {
        "mode": "run", "run_dir": str(run_dir),
        "verifier_a": cfg.verifier.model_dump(mode="json", by_alias=True) if rescore_a else "as recorded in rollouts.jsonl",
        "stats": reward_stats(rows_a), "passed": True, "problems": [],
    }
    if cfg_b is not None:
        rows_b = asyncio.run(_rescored(run_dir, cfg_b, rows))
        report["verifier_b"] = cfg_b.verifier.model_dump(mode="json", by_alias=True)
        report["stats_b"] = reward_stats(rows_b)
        report["agreement"] = agreement(list(zip(rows_a, rows_b)), cfg.validation.agreement_threshold,
                                        cfg.validation.examples)
        kappa, floor = report["agreement"]["cohen_kappa"], cfg.validation.min_kappa
        if floor is not None and (kappa is None or kappa < floor):
            report["passed"] = False
            report["problems"].append(f"Cohen's kappa {kappa} < validate.min_kappa {floor}")
    out = Path(out_arg or cfg.validation.output_dir or run_dir / "validate")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", report)
    (out / "report.md").write_text(_run_md(report), encoding="utf-8")
    s = report["stats"]
    line = (f"rollgen validate: {s['rewarded']} rewarded of {s['rollouts']} rollouts; mean {s['mean_reward']}, "
            f"share 0 {s['share_0']}, share 1 {s['share_1']}, unparseable {s['share_unparseable']}")
    if "agreement" in report:
        a = report["agreement"]
        line += f"; agreement {a['agreement']}, Cohen's kappa {a['cohen_kappa']}"
    print(line)
    for flag in s["red_flags"] + report["problems"]:
        print(f"  {flag}")
    print(f"report: {out / 'report.md'}")
    return 0 if report["passed"] else 1


def _stats_md(title: str, s: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "",
             f"{s['rewarded']} rewarded of {s['rollouts']} rollouts (by status: "
             + ", ".join(f"{k} {v}" for k, v in s["by_status"].items()) + ")", "",
             "| mean | std | share 0 | share 1 | share partial | share unparseable | share caught by guards |",
             "|---|---|---|---|---|---|---|",
             (f"| {s['mean_reward']} | {s['std_reward']} | {s['share_0']} | {s['share_1']} | {s['share_partial']} "
              f"| {s['share_unparseable']} | {s['share_guarded']} |"), "",
             "| reward | count |", "|---|---|", *(f"| {h['bin']} | {h['count']} |" for h in s["histogram"]), ""]
    if s["guards"]:
        lines += ["Guards: " + ", ".join(f"{g} {n}" for g, n in s["guards"].items()), ""]
    lines += [f"- red flag: {f}" for f in s["red_flags"]]
    return lines + [""]


def _run_md(report: dict[str, Any]) -> str:
    lines = [f"# rollgen validate: run `{report['run_dir']}`", "",
             f"**{'PASS' if report['passed'] else 'FAIL'}**", *(f"- {p}" for p in report["problems"]), ""]
    lines += _stats_md("Rewards (verifier A: " + ("as recorded" if isinstance(report["verifier_a"], str)
                                                  else f"`{report['verifier_a'].get('_target_')}`") + ")", report["stats"])
    if "agreement" in report:
        a = report["agreement"]
        lines += _stats_md(f"Rewards (verifier B: `{report['verifier_b'].get('_target_')}`)", report["stats_b"])
        lines += ["## Agreement", "",
                  (f"{a['compared']} rollouts scored by both (pass = reward ≥ {a['threshold']}): agreement "
                   f"{a['agreement']}, **Cohen's kappa {a['cohen_kappa']}**, mean |reward A − reward B| "
                   f"{a['mean_abs_reward_diff']}, {a['disagreements']} disagreements."), "",
                  "| | count |", "|---|---|", *(f"| {k} | {v} |" for k, v in a["table"].items()), ""]
        for ex in a["examples"]:
            lines.append(f"- `{ex['id']}`: A {ex['reward_a']} (extracted {ex['extracted_a']!r}), "
                         f"B {ex['reward_b']} (extracted {ex['extracted_b']!r})")
    return "\n".join(lines) + "\n"
