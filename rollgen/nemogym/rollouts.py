"""A NeMo Gym rollout file as a rollgen run: ``tasks.jsonl`` + ``rollouts.jsonl`` that curate, format and export read.

A line of NeMo Gym 0.7.0's ``<out>.jsonl`` (``gym eval run`` / ``ng_collect_rollouts``) is the resources server's
``/verify`` answer with the collector's stamps (``nemo_gym/rollout_collection.py`` l.2597-2616): the echoed
``responses_create_params`` (the prompt: ``input``, ``tools``, ``instructions``), ``response`` (an OpenAI Response
whose ``output`` holds every turn's items), ``reward``, optional ``mask_sample`` / ``failure_kind`` /
``failure_reason`` / ``reward_components``, the server's own fields (``expected_answer``, ``extracted_answer``,
...), and the stamps ``_ng_task_index``, ``_ng_rollout_index``, ``agent_ref``, ``task_source``, ... Older files
have no stamps: a task is then known by its prompt (a hash of ``input``, ``instructions`` and ``tools``).

``/verify`` answers keep only the fields the server declares, so a task field (``question``) may be missing from
the line; when ``<stem>_materialized_inputs.jsonl`` lies beside the file, the task's row is taken from there
(joined on ``_ng_task_index``). Per line: task = prompt + ``expected_answer`` (the answer) + the task row's other
fields (metadata); rollout = prompt + ``response.output`` as chat messages, ``reward``, every other field of
the line as ``reward_details``, and a status: ``error`` for a failure row (``_ng_failure_class``),
``verifier_error`` for a masked sample (``mask_sample``, e.g. a judge that failed), ``truncated`` for an
incomplete response, else ``ok``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollgen import jsonl
from rollgen.errors import UserError
from rollgen.nemogym.items import ItemError, chat_messages, chat_tools, prompt_messages, text_of
from rollgen.records import Rollout, Task, rollout_id

__all__ = ["Imported", "RolloutFileError", "import_rollouts", "read_rollouts"]

STAMPS = ("_ng_task_index", "_ng_rollout_index", "_ng_attempt_index", "_ng_rollout_id", "_ng_environment_server",
          "_ng_result_type", "_ng_failure_class", "_ng_failure_message", "_ng_failure_terminal", "agent_ref",
          "task_source", "skills_ref")
"""Collector stamps (``nemo_gym/global_config.py`` l.242-261, ``rollout_collection.py`` l.196-215): not verifier output."""
OBSERVABILITY = ("ng_trajectory", "ng_perf", "ng_model_call_capture", "ng_agent_observations")
SAMPLING = ("temperature", "top_p", "max_output_tokens")


class RolloutFileError(UserError, ValueError):
    """A line of a NeMo Gym rollout file rollgen cannot read; the message starts with ``<file>:<line>: ``."""


@dataclass
class Imported:
    """What an import read: counts, the lines skipped (``file:line: reason``) and where the task rows came from."""

    source: str
    rollouts: int = 0
    tasks: int = 0
    failure_rows: int = 0
    masked: int = 0
    skipped: list[str] = field(default_factory=list)
    materialized_inputs: str | None = None
    failures_sidecar: str | None = None
    envs: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    max_repeat: int = -1

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "rollouts": self.rollouts, "tasks": self.tasks,
                "failure_rows": self.failure_rows, "masked_samples": self.masked, "skipped_lines": len(self.skipped),
                "skipped": self.skipped[:100], "materialized_inputs": self.materialized_inputs,
                "failures_sidecar_not_imported": self.failures_sidecar, "environments": sorted(self.envs),
                "models": sorted(self.models)}


def _sidecar(path: Path, suffix: str) -> Path | None:
    p = path.with_name(f"{path.stem}{suffix}.jsonl")
    return p if p.is_file() else None


def _task_rows(path: Path | None) -> dict[int, dict[str, Any]]:
    """``_ng_task_index`` -> the task's input row (first seen), from a ``_materialized_inputs.jsonl`` file."""
    rows: dict[int, dict[str, Any]] = {}
    if path is None:
        return rows
    for line in jsonl.lines(path):
        row = jsonl.parse(path, line)
        if isinstance(row, dict) and isinstance(row.get("_ng_task_index"), int):
            rows.setdefault(row["_ng_task_index"], row)
    return rows


def _env(row: dict[str, Any]) -> str | None:
    ref = row.get("agent_ref")
    name = ref.get("name") if isinstance(ref, dict) else None
    return name or row.get("task_source") or row.get("_ng_environment_server") or None


def _prompt_hash(params: dict[str, Any]) -> str:
    key = json.dumps([params.get("instructions"), params.get("input"), params.get("tools") or []], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _usage(response: dict[str, Any]) -> dict[str, Any] | None:
    u = response.get("usage")
    if not isinstance(u, dict):
        return None
    out = {"prompt_tokens": u.get("input_tokens"), "completion_tokens": u.get("output_tokens"),
           "total_tokens": u.get("total_tokens")}
    return {k: v for k, v in out.items() if isinstance(v, int)} or None


def _reward(value: Any, failed: bool) -> float | None:
    if value is None and failed:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'reward' must be a number, got {json.dumps(value)[:40]}")
    return float(value)


def _convert(row: Any, stem: str, task_rows: dict[int, dict[str, Any]], repeats: dict[str, int]
             ) -> tuple[Task, Rollout]:
    """One line's task and rollout (raises ValueError saying what is wrong with the line)."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    for key in ("responses_create_params", "response"):
        if not isinstance(row.get(key), dict):
            raise ValueError(f"no '{key}' object (a NeMo Gym rollout line has responses_create_params, response, "
                             f"reward); the keys are {sorted(row)[:12]}")
    params, response = row["responses_create_params"], row["response"]
    output = response.get("output")
    if not isinstance(output, list):
        raise ValueError("'response.output' must be a list of items")
    failed = bool(row.get("_ng_failure_class"))
    reward = _reward(row.get("reward"), failed)
    prompt = prompt_messages(params)
    tools = chat_tools(params.get("tools"))
    index = row.get("_ng_task_index")
    task_id = f"{stem}-{index}" if isinstance(index, int) and not isinstance(index, bool) else f"ng-{_prompt_hash(params)}"
    given = row.get("_ng_rollout_index")
    repeat = given if isinstance(given, int) and not isinstance(given, bool) and given >= 0 else repeats.get(task_id, 0)
    repeats[task_id] = max(repeats.get(task_id, 0), repeat + 1)
    base = task_rows.get(index, {}) if isinstance(index, int) else {}
    fields = {k: v for k, v in base.items() if k not in ("responses_create_params", *STAMPS)}
    answer = fields.pop("expected_answer", row.get("expected_answer"))
    metadata = {**fields, **({"env": env} if (env := _env(row)) else {})}
    task = Task(id=task_id, messages=prompt, tools=tools, answer=answer, metadata=metadata)

    completion = chat_messages(output, "response.output")
    details = {k: v for k, v in row.items()
               if k not in ("responses_create_params", "response", "reward", *STAMPS, *OBSERVABILITY)}
    status, error = "ok", None
    truncated = response.get("status") == "incomplete"
    if failed:
        status, error = "error", f"{row['_ng_failure_class']}: {row.get('_ng_failure_message') or ''}".rstrip(": ")
    elif row.get("mask_sample") is True:
        status = "verifier_error"
        error = f"{row.get('failure_kind') or 'masked'}: {row.get('failure_reason') or ''}".rstrip(": ")
    elif truncated:
        status = "truncated"
    last = next((m for m in reversed(completion) if m["role"] == "assistant"), None)
    finish = "length" if truncated else "tool_calls" if last and last.get("tool_calls") and completion[-1] is last \
        else "stop"
    rollout = Rollout(
        id=rollout_id(task_id, repeat), task_id=task_id, repeat=repeat, messages=prompt + completion,
        completion=text_of(last.get("content"), "response") if last else "", reward=reward, reward_details=details,
        verifier=f"nemo_gym:{_env(row) or 'resources_server'}", status=status, error=error, finish_reason=finish,
        usage=_usage(response), model=response.get("model") if isinstance(response.get("model"), str) else None,
        sampling={k: params[k] for k in SAMPLING if params.get(k) is not None},
        turns=sum(1 for m in completion if m["role"] == "assistant"))
    return task, rollout


def read_rollouts(path: str | os.PathLike[str], imported: Imported, skip_bad: bool = False
                  ) -> Iterator[tuple[Task, Rollout]]:
    """Stream ``(task, rollout)`` per line of a NeMo Gym rollout file. A bad line raises ``RolloutFileError``
    naming ``file:line``, or with ``skip_bad`` is counted in ``imported.skipped`` and left out."""
    p = Path(path)
    if not p.is_file():
        raise RolloutFileError(f"{p}: no such rollout file" if not p.exists() else f"{p}: not a file")
    inputs = _sidecar(p, "_materialized_inputs")
    imported.materialized_inputs = str(inputs) if inputs else None
    sidecar = _sidecar(p, "_failures")
    imported.failures_sidecar = str(sidecar) if sidecar else None
    task_rows = _task_rows(inputs)
    repeats: dict[str, int] = {}
    first: dict[str, int] = {}
    for line in jsonl.lines(p):
        try:
            task, rollout = _convert(jsonl.parse(p, line), p.stem, task_rows, repeats)
            if rollout.id in first:
                raise ValueError(f"rollout {rollout.repeat} of task {task.id} again (first on line {first[rollout.id]})")
        except (ValueError, ItemError) as e:  # JsonlError is a ValueError too
            msg = str(e) if isinstance(e, jsonl.JsonlError) else f"{p}:{line.number}: {e}"
            if not skip_bad:
                raise RolloutFileError(msg) from None
            imported.skipped.append(msg)
            continue
        first[rollout.id] = line.number
        yield task, rollout


def import_rollouts(path: str | os.PathLike[str], run_dir: str | os.PathLike[str], skip_bad: bool = False) -> Imported:
    """Write ``run_dir/tasks.jsonl`` and ``rollouts.jsonl`` from a NeMo Gym rollout file; returns what was read.
    Raises ``RolloutFileError`` (nothing written) for a bad line unless ``skip_bad``, and when no line is usable."""
    from rollgen.rundir import RunDir

    rd = RunDir(run_dir)
    imported = Imported(source=str(path))
    seen: set[str] = set()
    with jsonl.atomic_file(rd.tasks) as tasks, jsonl.atomic_file(rd.rollouts) as rollouts:
        for task, rollout in read_rollouts(path, imported, skip_bad):
            if task.id not in seen:
                seen.add(task.id)
                tasks.write(jsonl.dumps(task) + "\n")
            rollouts.write(jsonl.dumps(rollout) + "\n")
            imported.rollouts += 1
            imported.failure_rows += rollout.status == "error"
            imported.masked += rollout.status == "verifier_error"
            imported.max_repeat = max(imported.max_repeat, rollout.repeat)
            if env := task.metadata.get("env"):
                imported.envs.add(env)
            if rollout.model:
                imported.models.add(rollout.model)
        if not imported.rollouts:
            raise RolloutFileError(f"{path}: no rollout lines" + (
                f" ({len(imported.skipped)} skipped: {imported.skipped[0]})" if imported.skipped else ""))
    imported.tasks = len(seen)
    return imported
