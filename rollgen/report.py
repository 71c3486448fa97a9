"""The report stage: ``build_report`` makes a run's ``Report`` from the typed stage results (once); ``write_plots``
draws every plot from them; ``write_report`` writes ``report.json`` (``Report.to_json``) and ``report.md`` (the
same numbers, for people)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rollgen.config import RunConfig
from rollgen.explain import empty_md, why_empty
from rollgen.jsonl import write_json
from rollgen.results import Collection, Curation, DatasetSummary, ExportResult, Report
from rollgen.rundir import RunDir
from rollgen.version import __version__

__all__ = ["build_report", "draw_plots", "write_plots", "write_report"]


def build_report(cfg: RunConfig, collection: Collection, *, curation: Curation | None = None,
                 dataset: DatasetSummary | None = None, exports: ExportResult | None = None,
                 status: str | None = None, reason: str | None = None, plots: list[str] | None = None,
                 wall_time_s: float | None = None, curated_with: dict[str, Any] | None = None,
                 rollgen_version: str = __version__, extra: dict[str, Any] | None = None) -> Report:
    """The report of a run: ``collection`` and, when the stages after it ran to the end, their results.

    ``status`` / ``reason`` override the collection's (a run stopped after collecting); ``empty`` (why there is
    no data, per stage) is worked out here from the results.
    """
    report = Report(status=status or collection.status, rollgen_version=rollgen_version, format=cfg.format.kind,
                    collection=collection, curation=curation, dataset=dataset, exports=exports,
                    reason=reason if status else collection.reason, plots=plots, wall_time_s=wall_time_s,
                    curated_with=curated_with, extra=dict(extra or {}))
    if report.downstream:
        report.empty = why_empty(report.to_json(), cfg)  # 0 rows, or an export with no files: which stage, what to change
    return report


def write_plots(cfg: RunConfig, rd: RunDir, curation: Curation | None,
                pass_at_k: dict[str, dict[int, float]] | None) -> list[str]:
    """The run's plots under ``rd.root/plots`` (when ``quality.plots``): quality plots of ``curation`` (when it saw
    rollouts), pass@k / maj@k of ``pass_at_k``; their paths relative to the run dir."""
    return draw_plots(cfg.quality.plots, rd.root, curation, pass_at_k)


def draw_plots(enabled: bool, root: Path, curation: Curation | None,
               pass_at_k: dict[str, dict[int, float]] | None) -> list[str]:
    """``write_plots`` from its parts: ``quality.plots`` and the run dir (the quality follower draws them too)."""
    if not enabled:
        return []
    from rollgen import plots

    out = plots.write_plots(curation, root / "plots") if curation is not None and curation.total else []
    return out + (plots.write_pass_curves(pass_at_k, root / "plots") if pass_at_k is not None else [])


def write_report(rd: RunDir, report: Report) -> dict[str, Any]:
    """``report.json`` and ``report.md``; returns report.json's content."""
    data = report.to_json()
    write_json(rd.report_json, data)
    c = data["collection"]
    lines = [
        f"# rollgen run `{rd.root}`", "",
        f"status: **{data['status']}** · model `{data['model']}` · collection hash `{data['config_hash']}`", "",
        *empty_md(data),
        "## Collection", "",
        "| tasks | rollouts | mean reward | pass rate | task pass rate | wall time (s) | rollouts/s |",
        "|---|---|---|---|---|---|---|",
        f"| {c['tasks']} | {c['rollouts']} | {c['mean_reward']} | {c['pass_rate']} | {c['task_pass_rate']} "
        f"| {data['wall_time_s']} | {data['rollouts_per_s']} |", "",
        "Rollouts by status: " + ", ".join(f"{k} {v}" for k, v in c["by_status"].items()), "",
        "Tokens: " + (", ".join(f"{k} {v}" for k, v in c["tokens"].items()) or "not reported"), "",
        *_calls_lines(data),
        *_endpoint_lines(data),
        *_repeat_lines(data),
        *_quality_lines(data),
        "## Dataset", "", f"format `{data['format']}`: "
        + ", ".join(f"{k} {v} rows" for k, v in data["dataset"].items()), "",
    ]
    rd.report_md.write_text("\n".join(lines), encoding="utf-8")
    return data


def _calls_lines(report: dict[str, Any]) -> list[str]:
    """What collection cost: requests this run sent (reused rollouts cost none), retries counted apart."""
    calls = report.get("calls")
    if not calls:
        return []
    return [f"Requests sent: {calls['model_calls']} model calls, {calls['retries']} retries; "
            f"{calls['reused_rollouts']} rollouts reused from earlier runs (no calls)", ""]


def _endpoint_lines(report: dict[str, Any]) -> list[str]:
    """Each endpoint's share of the requests and its latency, when the run had several (``policy.base_urls``)."""
    endpoints = report.get("endpoints") or []
    if len(endpoints) < 2:
        return []
    lines = ["| endpoint | requests | ok | failed | taken out | latency mean / p50 / p95 (s) |", "|---|---|---|---|---|---|"]
    lines += [f"| {e['url']} | {e['requests']} | {e['ok']} | {e['failed']} | {e['taken_out']} "
              f"| {e['latency_mean_s']} / {e['latency_p50_s']} / {e['latency_p95_s']} |" for e in endpoints]
    return [*lines, ""]


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
                      f"solved {pr['always_solved']}, mixed {pr['mixed']} (solved: a rollout's reward reached 1).", ""]
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

