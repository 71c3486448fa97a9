"""Run report: ``report.json`` (numbers) and ``report.md`` (the same, for people), from the run files."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import Any

from rollgen.rundir import RunDir, read_jsonl, write_json

__all__ = ["rollout_stats", "write_report"]


def rollout_stats(path: os.PathLike[str]) -> dict[str, Any]:
    """Counts, rewards and tokens over a rollouts file, streamed."""
    statuses: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    rewards: list[float] = []
    task_best: dict[str, float] = defaultdict(float)
    tasks = set()
    for r in read_jsonl(path):
        statuses[r["status"]] += 1
        tasks.add(r["task_id"])
        for k, v in (r.get("usage") or {}).items():
            if isinstance(v, int):
                tokens[k] += v
        if r.get("reward") is not None:
            rewards.append(r["reward"])
            task_best[r["task_id"]] = max(task_best[r["task_id"]], r["reward"])
    n = sum(statuses.values())
    return {
        "tasks": len(tasks),
        "rollouts": n,
        "by_status": dict(sorted(statuses.items())),
        "mean_reward": round(sum(rewards) / len(rewards), 6) if rewards else None,
        "pass_rate": round(sum(x >= 1.0 for x in rewards) / len(rewards), 6) if rewards else None,
        "task_pass_rate": round(sum(v >= 1.0 for v in task_best.values()) / len(tasks), 6) if tasks else None,
        "tokens": dict(tokens),
    }


def write_report(rd: RunDir, report: dict[str, Any]) -> None:
    write_json(rd.report_json, report)
    c = report["collection"]
    lines = [
        f"# rollgen run `{rd.root}`", "",
        f"status: **{report['status']}** · model `{report['model']}` · config hash `{report['config_hash']}`", "",
        "## Collection", "",
        "| tasks | rollouts | mean reward | pass rate | task pass rate | wall time (s) | rollouts/s |",
        "|---|---|---|---|---|---|---|",
        f"| {c['tasks']} | {c['rollouts']} | {c['mean_reward']} | {c['pass_rate']} | {c['task_pass_rate']} "
        f"| {report['wall_time_s']} | {report['rollouts_per_s']} |", "",
        "Rollouts by status: " + ", ".join(f"{k} {v}" for k, v in c["by_status"].items()), "",
        "Tokens: " + (", ".join(f"{k} {v}" for k, v in c["tokens"].items()) or "not reported"), "",
        "## Quality funnel", "", "| filter | in | out |", "|---|---|---|",
        *(f"| {f['filter']} | {f['in']} | {f['out']} |" for f in report["funnel"]), "",
        "## Dataset", "", f"format `{report['format']}`: "
        + ", ".join(f"{k} {v} rows" for k, v in report["dataset"].items()), "",
    ]
    rd.report_md.write_text("\n".join(lines), encoding="utf-8")
