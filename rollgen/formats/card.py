"""The dataset card, ``dataset/README.md``: how to load it, where it came from, what is in it.

The YAML front matter is a Hugging Face dataset card header (licence, tags, split files), so the folder
also loads with ``datasets.load_dataset(<folder>)`` and uploads to the Hub as it is. Provenance comes from
the ``Source``: the run's saved config (rollgen version, config) and its collection (model, sampling
parameters, collection hash, counts by status), plus the drops per filter in ``rejected.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from rollgen import jsonl
from rollgen.version import __version__
from rollgen.formats.rows import FORMATS
from rollgen.formats.source import Source

__all__ = ["provenance", "write_card"]

_FILTER = re.compile(rb'^\{"filter": ("(?:[^"\\]|\\.)*")')  # rejected.jsonl rows start with the filter's name


def provenance(src: Source, curated: int) -> dict[str, Any]:
    """Where the rollouts came from: the run's saved config and its collection (``src``), ``curated`` rollouts, and
    the rollouts each quality filter dropped (``rejected.jsonl`` beside the curated file)."""
    out: dict[str, Any] = {"rollgen_version": __version__}
    saved = src.run_config
    if saved is not None:
        out["rollgen_version_of_run"] = saved.get("rollgen_version")
        stable = {k: v for k, v in saved.items() if k not in ("output_dir", "rollgen_version", "resume")}
        out["run_config_hash"] = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]
        out["server"] = (saved.get("server") or {}).get("_target_")
        out["policy"] = (saved.get("policy") or {}).get("_target_")
        out["verifier"] = (saved.get("verifier") or {}).get("_target_")
        quality = saved.get("quality") or {}
        out["quality"] = {k: v for k, v in quality.items() if k in ("kind", "min_reward_threshold", "chain")} or None
        out["sampler"] = {k: v for k, v in (saved.get("sampler") or {}).items() if k != "responses_create_params"}
    out["rejected_by_filter"] = _rejected(src)
    c = src.collection
    out.update(models=c.models if c else [], collection_hashes=c.config_hashes if c else [],
               sampling=c.sampling if c else None, tasks_collected=c.stats.tasks if c else None,
               rollouts=c.stats.rollouts if c else None, rollouts_by_status=c.stats.by_status if c else {},
               curated=curated)
    return out


def _rejected(src: Source) -> dict[str, int]:
    """Rows each quality filter dropped, in chain order: from the quality stage's funnel when the caller has it, else
    counted in ``rejected.jsonl`` beside the curated file (one pass over it)."""
    rejected: Counter[str] = Counter()
    if src.rejected is not None:
        rejected.update({k: n for k, n in src.rejected.items() if n})
    elif (path := src.curated.parent / "rejected.jsonl").is_file():
        for line in jsonl.lines(path):
            m = _FILTER.match(line.raw)
            rejected[json.loads(m.group(1)) if m else str(jsonl.parse(path, line).get("filter", "?"))] += 1
    chain = ((src.run_config or {}).get("quality") or {}).get("chain") or []
    place = {name: k for k, name in enumerate(chain)}
    return dict(sorted(rejected.items(), key=lambda kv: (place.get(kv[0], len(place)), kv[0])))


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {k} | {'`' + json.dumps(v) + '`' if isinstance(v, (dict, list)) else v} |"
                                   for k, v in rows if v not in (None, {}, []))]


def _front_matter(cfg: Any, splits: dict[str, int]) -> list[str]:
    lines = ["---", f"license: {cfg.license or 'unknown'}", "tags:", "- rollgen", f"- {cfg.kind}", "- synthetic",
             "task_categories:", "- text-generation", "configs:", "- config_name: default", "  data_files:"]
    for name, n in splits.items():
        if n:
            lines += [f"  - split: {name}", f"    path: {name}.jsonl"]
    return [*lines, "---", ""]


def _split_lines(summary: dict[str, Any]) -> list[str]:
    """How the split was made, and what a check of the written files found (not what was intended)."""
    by, overlap = summary.get("split_by") or {}, summary.get("prompt_overlap") or {}
    lines = []
    if by:
        lines.append(f"Tasks are grouped by {by['key']} and whole groups are assigned to a split (seeded): "
                     f"{by['tasks']} tasks, {by['distinct_prompts']} distinct prompts, {by['groups']} groups; "
                     f"{by['tasks_sharing_a_group']} tasks share their group with another task.")
    if overlap:
        leaks = overlap["leaking_rows"]
        lines.append("Checked on the files written (prompts compared as normalised text, and task ids): "
                     + ("no prompt is in two splits." if not leaks else
                        f"**{leaks} of {overlap['rows_checked']} rows have a prompt that is also in another split** "
                        f"({overlap['leaking_prompts']} distinct prompts; by file: "
                        f"{json.dumps(overlap['leaking_rows_by_file'])})."))
    return lines


def write_card(out: Path, cfg: Any, summary: dict[str, Any], src: Source, seed: int, curated: int) -> dict[str, Any]:
    """Write ``out/README.md`` (``curated``: the curated rollouts it was made from); return the provenance it states."""
    prov = provenance(src, curated)
    stats = summary["stats"]
    lines = _front_matter(cfg, summary["splits"])
    lines += [f"# rollgen dataset: {cfg.kind}", "", FORMATS[cfg.kind].description, "",
              "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("json", data_dir="{out}")', "```", "",
              "## Splits", "", *_split_lines(summary), "",
              "| split | rows | tasks |", "|---|---|---|",
              *(f"| {s} | {n} | {summary['tasks'].get(s, 0)} |" for s, n in summary["splits"].items()), "",
              "## Provenance", ""]
    lines += _table([
        ("rollgen version", prov["rollgen_version"]),
        ("rollgen version of the run", prov.get("rollgen_version_of_run")),
        ("run config hash", prov.get("run_config_hash")), ("collection hash", ", ".join(prov["collection_hashes"])),
        ("model", ", ".join(prov["models"])), ("sampling", prov["sampling"]), ("sampler", prov.get("sampler")),
        ("server", prov.get("server")), ("policy", prov.get("policy")), ("verifier", prov.get("verifier")),
        ("quality", prov.get("quality")), ("format", cfg.model_dump(mode="json")), ("seed", seed),
        ("licence", cfg.license or "unknown (set format.license)"),
    ])
    lines += ["", "## Counts per stage", "", "| stage | count |", "|---|---|"]
    if prov["rollouts"] is not None:
        by_status = ", ".join(f"{k} {v}" for k, v in prov["rollouts_by_status"].items())
        lines += [f"| tasks collected | {prov['tasks_collected']} |",
                  f"| rollouts | {prov['rollouts']} ({by_status}) |"]
    lines += [f"| dropped by quality filter `{name}` | {n} |" for name, n in prov["rejected_by_filter"].items()]
    lines += [f"| curated rollouts | {prov['curated']} |", f"| dataset rows | {summary['rows']} |"]
    lines += [f"| left out: {reason} | {n} |" for reason, n in summary["dropped"].items()]
    if "labels" in summary:
        lab = summary["labels"]
        lines += ["", "## Labels", "", f"desirable {lab['desirable']}, undesirable {lab['undesirable']}, "
                  f"desirable ratio {lab['desirable_ratio']}"
                  + (f"; {lab['dropped_to_balance']} rows dropped to balance" if lab["balanced"] else "")
                  + (f"; TRL weights that balance them: `{json.dumps(lab['suggested_trl_weights'])}`"
                     if lab["suggested_trl_weights"] else "")]
    lines += ["", "## Statistics", "", "Lengths in characters of what a reader sees (contents and tool calls).", "",
              "| field | n | mean | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|---|"]
    measured = [(f"{k} (chars)", s) for k, s in (stats.get("length_chars") or {}).items()]
    measured += list((stats.get("values") or {}).items())
    for name, s in measured:
        if s:
            lines.append(f"| {name} | {s['n']} | {s['mean']} | {s['p50']} | {s['p90']} | {s['p99']} | {s['max']} |")
    if summary["notes"]:
        lines += ["", "## Notes", "", *(f"- {n}" for n in summary["notes"])]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return prov
