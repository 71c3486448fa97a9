"""Run report: ``report.json`` (numbers) and ``report.md`` (the same, for people), from the run files."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rollgen.explain import empty_md
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
        f"status: **{report['status']}** · model `{report['model']}` · collection hash `{report['config_hash']}`", "",
        *empty_md(report),
        "## Collection", "",
        "| tasks | rollouts | mean reward | pass rate | task pass rate | wall time (s) | rollouts/s |",
        "|---|---|---|---|---|---|---|",
        f"| {c['tasks']} | {c['rollouts']} | {c['mean_reward']} | {c['pass_rate']} | {c['task_pass_rate']} "
        f"| {report['wall_time_s']} | {report['rollouts_per_s']} |", "",
        "Rollouts by status: " + ", ".join(f"{k} {v}" for k, v in c["by_status"].items()), "",
        "Tokens: " + (", ".join(f"{k} {v}" for k, v in c["tokens"].items()) or "not reported"), "",
        *_calls_lines(report),
        *_repeat_lines(report),
        *_quality_lines(report),
        "## Dataset", "", f"format `{report['format']}`: "
        + ", ".join(f"{k} {v} rows" for k, v in report["dataset"].items()), "",
    ]
    rd.report_md.write_text("\n".join(lines), encoding="utf-8")


def _calls_lines(report: dict[str, Any]) -> list[str]:
    """What collection cost: requests this run sent (reused rollouts cost none), retries counted apart."""
    calls = report.get("calls")
    if not calls:
        return []
    return [f"Requests sent: {calls['model_calls']} model calls, {calls['retries']} retries; "
            f"{calls['reused_rollouts']} rollouts reused from earlier runs (no calls)", ""]


def _repeat_lines(report: dict[str, Any]) -> list[str]:
    """pass@k and maj@k over the repeats of each task (unbiased pass@k estimator), as a table."""
    curves = {name: {int(k): v for k, v in c.items()} for name, c in (report.get("pass_at_k") or {}).items()}
    ks = sorted(curves.get("pass@k", {}))
    if not ks:
        return []
    return ["## pass@k and maj@k", "", "| k | " + " | ".join(str(k) for k in ks) + " |", "|---" * (len(ks) + 1) + "|",
            *(f"| {name} | " + " | ".join(f"{curve[k]:.3f}" for k in ks) + " |" for name, curve in curves.items()),
            ""]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _quality_lines(report: dict[str, Any]) -> list[str]:
    """The funnel (with the main reasons), quality metrics, contamination and plot links, as markdown."""
    lines = ["## Quality funnel", "", "| filter | in | out | dropped | main reasons |", "|---|---|---|---|---|"]
    for f in report["funnel"]:
        why = ", ".join(f"{k} ({v})" for k, v in list(f.get("reasons", {}).items())[:3])
        lines.append(f"| {f['filter']} | {f['in']} | {f['out']} | {f.get('dropped', f['in'] - f['out'])} | {why} |")
    lines += ["", "Every dropped rollout is in `rejected.jsonl` with its filter, reason and detail.", ""]
    q = report.get("quality")
    if q:
        r, ln, pr = q["reward"], q["length"], q["pass_rate"]
        d, dup = q["distinct"], q["duplicates"]["exact_rate"]
        lines += [
            "## Quality metrics", "",
            "| | rollouts | mean reward | reward std | median length | p90 length | exact duplicates "
            + "".join(f"| {k.replace('_', '-')} " for k in d) + "|",
            "|---" * (7 + len(d)) + "|",
        ]
        for which, n in (("all", q["rollouts"]), ("curated", q["curated"])):
            lines.append(f"| {which} | {n} | {r[which].get('mean', '–')} | {r[which].get('std', '–')} "
                         f"| {ln[which].get('p50', '–')} | {ln[which].get('p90', '–')} | {_pct(dup[which])} "
                         + "".join(f"| {_pct(v[which])} " for v in d.values()) + "|")
        lines += ["", f"Length in {ln['unit']}. Tasks: {pr['tasks']}, never solved {pr['never_solved']}, always "
                      f"solved {pr['always_solved']}, mixed {pr['mixed']} (mean reward of their rollouts).", ""]
        for key, table in q.get("by_metadata", {}).items():
            lines += [f"By `{key}`:", "", "| value | tasks | rollouts | curated | mean reward | curated mean reward |",
                      "|---|---|---|---|---|---|",
                      *(f"| {t['value']} | {t['tasks']} | {t['rollouts']} | {t['curated']} | {t['mean_reward']} "
                        f"| {t['curated_mean_reward']} |" for t in table), ""]
    c = report.get("contamination")
    if c and c["files"]:
        lines += [f"## Decontamination ({c['ngram']}-gram overlap)", "",
                  "| evaluation file | rows | matched rows | rows too short to check |", "|---|---|---|---|",
                  *(f"| `{path}` | {s['rows']} | {s['matched_rows']} | {s['too_short']} |" for path, s in c["files"].items()),
                  "", *(f"- `{m['file']}` row `{m['row']}`: {', '.join(m['matched'])}"
                        + (f" (+{m['n_matched'] - len(m['matched'])} more)" if m["n_matched"] > len(m["matched"]) else "")
                        for m in c["matches"]), ""]
    if report.get("plots"):
        lines += ["## Plots", "", *(f"![{Path(p).stem}]({p})" for p in report["plots"]), ""]
    return lines

