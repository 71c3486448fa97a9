"""``rollgen curate --from-nemo-gym FILE``: a NeMo Gym rollout file made into a rollgen run dir, ready to curate.

The run dir gets ``tasks.jsonl`` and ``rollouts.jsonl`` (``rollgen.nemogym.rollouts``), ``run_config.json`` as
a run writes it (``server=remote`` naming the environment, the tasks file as its ``data_path``; the policy's
model from the responses; ``sampler.num_repeats`` from the rollout indices; the user's overrides) and
``nemo_gym_import.json`` (counts, skipped lines, the sidecar files found).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from rollgen.errors import UserError

__all__ = ["describe", "import_run"]


def import_run(source: str | os.PathLike[str], out: str | os.PathLike[str], overrides: list[str]) -> dict[str, Any]:
    """Write run dir ``out`` from NeMo Gym rollout file ``source``; returns the import summary.

    Raises ``ConfigError`` for a bad override, ``UserError`` for an ``out`` that holds rollouts already and for a
    bad line (``file:line: ...``; with ``on_bad_row=skip`` bad lines are counted instead)."""
    from rollgen.composer import compose
    from rollgen.rundir import RunDir, cannot_create

    rd = RunDir(out)
    if rd.rollouts.exists() or rd.config.exists():
        raise UserError(f"{rd.root}: holds a run already; give --out a new directory")
    base = ["server=remote", f"server.data_path={(rd.root / 'tasks.jsonl').absolute()}", "policy=openai"]
    cfg = compose(base + overrides, output_dir=str(rd.root))
    if problem := cannot_create(rd.root):
        raise UserError(f"--out: cannot write to {rd.root} ({problem})")
    created = not rd.root.exists()
    rd.mkdir()
    try:
        summary = _import(source, rd, cfg, overrides)
    except BaseException:
        if created:  # nothing half-made is left behind: the directory was ours
            shutil.rmtree(rd.root, ignore_errors=True)
        raise
    return summary


def _import(source: str | os.PathLike[str], rd: Any, cfg: Any, overrides: list[str]) -> dict[str, Any]:
    from rollgen.build import validate_run_config
    from rollgen.jsonl import write_json
    from rollgen.nemogym.rollouts import import_rollouts
    from rollgen.rundir import RunDirLock, saved_config

    with RunDirLock(rd.root):
        imported = import_rollouts(source, rd.root, skip_bad=cfg.on_bad_row == "skip")
        data = cfg.model_dump(mode="json", by_alias=True)
        server = data["server"]
        if server.get("name") is None and len(imported.envs) == 1:
            server["name"] = next(iter(imported.envs))
        if len(imported.models) == 1 and not any(o.startswith("policy.model=") for o in overrides):
            data["policy"]["model"] = next(iter(imported.models))
        if not any(o.startswith("sampler.num_repeats=") for o in overrides):
            data["sampler"]["num_repeats"] = max(1, imported.max_repeat + 1)
        write_json(rd.config, saved_config(validate_run_config(data)))
        summary = imported.summary()
        write_json(rd.root / "nemo_gym_import.json", summary)
    return summary


def describe(summary: dict[str, Any]) -> str:
    """One line for the terminal."""
    parts = [f"{summary['rollouts']} rollouts of {summary['tasks']} tasks from {summary['source']}"]
    if summary["failure_rows"] or summary["masked_samples"]:
        parts.append(f"{summary['failure_rows']} failure rows, {summary['masked_samples']} masked samples")
    if summary["skipped_lines"]:
        parts.append(f"{summary['skipped_lines']} bad lines skipped (first: {summary['skipped'][0]})")
    if summary["materialized_inputs"]:
        parts.append(f"task fields from {Path(summary['materialized_inputs']).name}")
    if summary["failures_sidecar_not_imported"]:
        parts.append(f"{Path(summary['failures_sidecar_not_imported']).name} not imported")
    return "; ".join(parts)
