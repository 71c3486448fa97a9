"""Why a finished run has no data: the stage that took the last rows, and the knob to change.

``why_empty(report, cfg)`` reads a complete run's report (funnel, dataset summary, export manifests) and
returns one line per problem: 0 dataset rows (the quality filter that dropped the last rollouts, or the
format that made no rows from the curated ones), and each export that wrote no data file. The engine logs
the lines as warnings and report.md shows them at the top; an empty list means there is data.
"""

from __future__ import annotations

from typing import Any

from rollgen.config import RunConfig

__all__ = ["empty_md", "why_empty"]


def _filter_hints(cfg: RunConfig) -> dict[str, str]:
    """What to change when a quality filter drops everything, per filter."""
    s, q, f = cfg.sampler, cfg.quality, cfg.quality.filters
    sampling = s.responses_create_params
    return {
        "status": "the requests failed or were cut off: see `error` in rollouts.jsonl; for truncated answers raise "
                  f"sampler.responses_create_params.max_output_tokens (now {sampling.max_output_tokens})",
        "reward": f"no rollout reached quality.min_reward_threshold={q.min_reward_threshold:g}: lower it, raise "
                  f"sampler.num_repeats (now {s.num_repeats}) for more tries per task, or use a stronger policy",
        "length": "loosen quality.filters.length (min_chars, max_chars, min_tokens, max_tokens, max_prompt_tokens)",
        "repetition": f"raise quality.filters.repetition.max_repeated_ratio (now {f.repetition.max_repeated_ratio:g})",
        "refusal": "check quality.filters.refusal.phrases",
        "answer_format": f"the completions do not match quality.filters.answer_format.pattern "
                         f"({f.answer_format.pattern}): ask for that form in the prompt, or change the pattern",
        "decontaminate": "every prompt overlaps quality.filters.decontaminate.eval_files: check those files",
        "pass_rate": f"every task was solved too often or too rarely for quality.filters.pass_rate "
                     f"[{f.pass_rate.min:g}, {f.pass_rate.max:g}]: widen it, or raise sampler.num_repeats "
                     f"(now {s.num_repeats})",
        "zero_variance": f"it keeps tasks whose rollouts (those the filters before it kept) differ in reward: raise "
                         f"sampler.num_repeats (now {s.num_repeats}) or the temperature (now "
                         f"{sampling.temperature:g}) so a task gets right and wrong answers",
        "stratify": f"no task has a quality.filters.stratify.targets value of `{f.stratify.by}`: check the targets",
    }


def _format_hint(cfg: RunConfig) -> str:
    s = cfg.sampler
    if cfg.format.kind == "dpo":
        return (f"a DPO pair needs two rollouts of one task whose rewards differ by format.min_quality_difference "
                f"({cfg.format.min_quality_difference:g}): raise sampler.num_repeats (now {s.num_repeats}) or the "
                f"temperature ({s.responses_create_params.temperature:g}) so a task gets right and wrong answers, "
                "or use format=kto (needs no pairs)")
    return f"see format.{cfg.format.kind}'s options"


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in list(reasons.items())[:3])


def _quality_line(report: dict[str, Any], cfg: RunConfig) -> str:
    funnel = report["funnel"]
    last = next((f for f in funnel if f["in"] > 0 and f["out"] == 0), None)
    if last is None:  # nothing reached quality
        return "0 dataset rows: no rollout to curate"
    hint = _filter_hints(cfg).get(last["filter"], f"loosen quality.filters.{last['filter']}")
    why = f" ({_reasons(last['reasons'])})" if last.get("reasons") else ""
    return (f"0 dataset rows: the quality filter `{last['filter']}` dropped the last {last['in']} of "
            f"{funnel[0]['in']} rollouts{why}; {hint}, or take `{last['filter']}` out of quality.chain")


def why_empty(report: dict[str, Any], cfg: RunConfig) -> list[str]:
    """One line per stage that left nothing behind (empty when the run has dataset rows and export files)."""
    if report.get("status") != "complete":
        return []
    lines = []
    rows = report["kept"].get("dataset_rows") or 0
    curated = report["kept"].get("curated") or 0
    if rows == 0 and curated == 0:
        lines.append(_quality_line(report, cfg))
    elif rows == 0:
        dropped = (report.get("dataset_details") or {}).get("dropped") or {}
        why = f" ({_reasons(dropped)})" if dropped else ""
        lines.append(f"0 dataset rows: format `{cfg.format.kind}` made no rows from {curated} curated rollouts{why}; "
                     + _format_hint(cfg))
    for name, manifest in (report.get("export") or {}).items():
        if not rows or any(isinstance(n, int) and n > 0 for n in (manifest.get("files") or {}).values()):
            continue  # data files list their rows; scripts and configs list None
        skipped = manifest.get("skipped") or []  # a user's integration need not report skipped rows
        notes = " ".join(manifest.get("notes") or []) or _reasons({s["reason"]: s["rows"] for s in skipped})
        lines.append(f"export/{name}: no files written from {rows} {cfg.format.kind} rows"
                     + (f": {notes}" if notes else ""))
    return lines


def empty_md(report: dict[str, Any]) -> list[str]:
    """report.md's section for ``report["empty"]`` (the lines of ``why_empty``); nothing when there is data."""
    lines = report.get("empty") or []
    return ["## No data", "", *(f"- {line}" for line in lines), ""] if lines else []
