"""BFCL (the Berkeley Function Calling Leaderboard) as a task source of ``server=tool_use``, read without bfcl-eval.

The ``bfcl-eval`` wheel (Apache-2.0; ``pip download bfcl-eval --no-deps`` and unzip) ships its questions as JSON
Lines, ``bfcl_eval/data/BFCL_v4_<category>.json`` (``id``, ``question``: turns of chat messages, ``function``:
the functions offered), and the possible answers beside them, ``data/possible_answer/BFCL_v4_<category>.json``
(``id``, ``ground_truth``: ``[{"name": {"param": [accepted values, "" when optional]}}]``). The single-turn
categories (``simple_python``, ``multiple``, ``parallel``, ``parallel_multiple``, ``live_*``) read as tasks: the
first turn's messages, the functions as OpenAI tools, the ground truth as ``metadata.expected_calls``, no answer.

The functions become tools as bfcl-eval's ``convert_to_tool`` makes them for OpenAI-style models (2026.3.23,
``model_handler/utils.py``): dots in names as underscores (in the ground truth too), the types by its
``GORILLA_TO_OPENAPI`` (``dict`` → ``object``, ``float`` → ``number``, ``tuple`` → ``array``, ``any`` →
``string``; a property without a type is a string). The tools are not run: a call gets a note back, and the
tool_use verifier scores the calls by BFCL's AST rules (all matched, none extra: reward 1).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rollgen.records import Task
from rollgen.servers.taskrows import TaskFileError

__all__ = ["BFCL_TYPES", "bfcl_tasks", "bfcl_tool"]

BFCL_TYPES = {"integer": "integer", "number": "number", "float": "number", "string": "string", "boolean": "boolean",
              "bool": "boolean", "array": "array", "list": "array", "dict": "object", "object": "object",
              "tuple": "array", "any": "string", "byte": "integer", "short": "integer", "long": "integer",
              "double": "number", "char": "string", "ArrayList": "array", "Array": "array", "HashMap": "object",
              "Hashtable": "object", "Queue": "array", "Stack": "array", "Any": "string", "String": "string",
              "Bigint": "integer"}


def _name(name: str) -> str:
    return re.sub(r"\.", "_", name)


def _schema(node: Any) -> Any:
    """A BFCL parameter schema with JSON Schema types, at every level."""
    if isinstance(node, list):
        return [_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _schema(v) for k, v in node.items()}
    if isinstance(node.get("type"), str):
        out["type"] = BFCL_TYPES.get(node["type"], "string")
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: {**v, "type": v.get("type", "string")} if isinstance(v, dict) else v
                             for k, v in out["properties"].items()}
    return out


def bfcl_tool(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function description as an OpenAI chat tool."""
    fn = copy.deepcopy(function)
    fn["name"] = _name(str(fn.get("name", "")))
    params = _schema(fn.get("parameters") or {})
    params["type"] = "object"
    fn["parameters"] = params
    return {"type": "function", "function": fn}


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise TaskFileError(f"{path}:{lineno}: invalid JSON: {e}") from None
            if not isinstance(row, dict) or "id" not in row:
                raise TaskFileError(f"{path}:{lineno}: expected a BFCL row with an 'id'")
            yield lineno, row


def bfcl_tasks(questions: str | Path, answers: str | Path) -> Iterator[Task]:
    """The tasks of a BFCL question file, their expected calls from its possible-answer file (matched by id)."""
    qpath, apath = Path(questions), Path(answers)
    for p in (qpath, apath):
        if not p.is_file():
            raise TaskFileError(f"{p}: no such BFCL file")
    truth = {row["id"]: row.get("ground_truth") for _, row in _rows(apath)}
    for lineno, row in _rows(qpath):
        where = f"{qpath}:{lineno}"
        turns, functions = row.get("question"), row.get("function")
        if not (isinstance(turns, list) and turns and isinstance(turns[0], list) and turns[0]):
            raise TaskFileError(f"{where}: 'question' must be a list of turns of chat messages")
        if len(turns) > 1:
            raise TaskFileError(f"{where}: {row['id']!r} is a multi-turn BFCL task; only single-turn categories are read")
        if row["id"] not in truth:
            raise TaskFileError(f"{where}: {row['id']!r} has no ground truth in {apath}")
        calls = truth[row["id"]]
        if not isinstance(calls, list) or not all(isinstance(c, dict) and len(c) == 1 for c in calls):
            raise TaskFileError(f"{apath}: {row['id']!r}: 'ground_truth' must be a list of {{name: {{param: [values]}}}}")
        yield Task(id=str(row["id"]), messages=[dict(m) for m in turns[0]],
                   tools=[bfcl_tool(f) for f in functions or []],
                   metadata={"source": "bfcl", "expected_calls": [{_name(n): p for n, p in c.items()} for c in calls]})
