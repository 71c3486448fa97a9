"""``format=nemo_gym``: NeMo Gym task rows, one per curated task (a task with a rollout that passed quality).

A row is what NeMo Gym 0.7.0 reads as a task (``resources_servers/*/data/example.jsonl``) and NeMo-RL's gym data
path trains on (``NemoGymDataset`` keeps each line as text; ``nemo_gym_data_processor`` ``json.loads`` it, the
rollout collector routes it by ``agent_ref.name`` and POSTs it to the agent's ``/run``)::

    {"responses_create_params": {"input": [{"role": "user", "content": "...", "type": "message"}], "tools": [...]},
     "expected_answer": "42", <the task's verifier fields>, "agent_ref": {"type": "responses_api_agents", "name": ...}}

Inside ``responses_create_params`` only keys of NeMo Gym's schema (``extra="forbid"``), tools in the flat
Responses shape, tool history as ``function_call`` / ``function_call_output`` items (``rollgen.nemogym.taskrow``).
rollgen's own provenance (task id, pass rate) stays out of the row: NeMo Gym's per-server ``TaskData`` schemas
report unknown keys. ``format.agent_name`` sets ``agent_ref`` (NeMo-RL needs it: ``row["agent_ref"]["name"]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rollgen.config import NemoGymFormat
from rollgen.formats.rows import FORMATS, Context, Format
from rollgen.formats.source import Entry
from rollgen.nemogym.taskrow import task_row

__all__ = ["nemo_gym_rows"]


def nemo_gym_rows(ctx: Context, task_id: str, entries: list[Entry]) -> Iterator[dict[str, Any]]:
    """The task's NeMo Gym row: from tasks.jsonl (its answer and fields), else the prompt of its first rollout."""
    cfg = ctx.cfg
    assert isinstance(cfg, NemoGymFormat)
    task = ctx.reader.task(task_id)
    if task is None:
        t = ctx.turns(min(entries, key=lambda e: e.repeat))
        if t is None:
            return
        ctx.dropped["task not in tasks.jsonl: prompt from a rollout, no expected_answer"] += 1
        task = {"id": task_id, "messages": t.prompt}
    else:
        task = dict(task)
    if cfg.system_prompt and (task.get("messages") or [{}])[0].get("role") != "system":
        task["messages"] = [{"role": "system", "content": cfg.system_prompt},
                            *(task.get("messages") or [{"role": "user", "content": task.get("prompt") or ""}])]
    task["tools"] = ctx.reader.tools_for(task)
    row = task_row(task, metadata=cfg.metadata)
    if cfg.agent_name:
        row["agent_ref"] = {"type": "responses_api_agents", "name": cfg.agent_name}
    yield row


FORMATS.register("nemo_gym")(Format(
    nemo_gym_rows,
    "NeMo Gym task rows: `responses_create_params` (`input`, `tools`) plus the verifier fields (`expected_answer`, "
    "...) and `agent_ref`, one per curated task: what `gym eval run` collects from and NeMo-RL's `NemoGymDataset` "
    "trains on.", ("prompt",), ()))
