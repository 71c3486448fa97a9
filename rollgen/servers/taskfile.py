"""JSONL task files: read rollgen, NeMo Gym and plain question/answer rows as ``Task``s; write them back.

Row shapes, told apart by their keys:

* rollgen: the ``Task`` fields, ``messages`` or ``prompt`` plus ``tools``, ``answer``, ``metadata``;
* NeMo Gym: ``responses_create_params.input`` (a string or ``{role, content}`` messages), optional
  ``responses_create_params.tools`` / ``instructions``, the ground truth in ``expected_answer`` (or ``answer``);
* plain: ``question`` (or ``problem``) and ``answer`` (or ``solution``).

Keys a shape does not use go into ``metadata``. A row without ``id`` gets ``<file stem>-<line number>``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollgen.records import Task
from rollgen.servers import TaskSourceError

__all__ = ["TaskFileError", "read_tasks", "write_tasks"]


class TaskFileError(TaskSourceError):
    """A task file that cannot be read; the message starts with ``<path>:<line>: `` when a line is at fault."""


MAX_LINE_BYTES = 16 * 2**20


def read_tasks(path: str | os.PathLike[str], skipped: list[str] | None = None) -> Iterator[Task]:
    """Stream the tasks of a JSONL file, one line at a time (blank lines skipped).

    Raises TaskFileError at once when the file is missing, and while iterating at the first bad line,
    unless ``skipped`` is a list: then each bad line's message is appended to it and the line skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise TaskFileError(f"{p}: no such task file" if not p.exists() else f"{p}: not a file")
    return _read(p, skipped)


def _read(p: Path, skipped: list[str] | None) -> Iterator[Task]:
    first_line: dict[str, int] = {}  # id -> line, to catch duplicate ids
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                if len(raw) > MAX_LINE_BYTES:
                    raise ValueError(f"line is {len(raw) / 2**20:.1f} MiB, over the {MAX_LINE_BYTES >> 20} MiB limit")
                line = raw.decode("utf-8")
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                if not line.strip():
                    continue
                task = _task_from_row(_json(line), default_id=f"{p.stem}-{lineno}")
                if task.id in first_line:
                    raise ValueError(f"duplicate id {task.id!r} (first on line {first_line[task.id]})")
            except UnicodeDecodeError as e:
                error = f"{p}:{lineno}: not UTF-8 (bad byte 0x{raw[e.start]:02x} at column {e.start + 1})"
            except ValueError as e:
                error = f"{p}:{lineno}: {e}"
            else:
                error = None
            if error is not None:
                if skipped is None:
                    raise TaskFileError(error)
                skipped.append(error)
                continue
            first_line[task.id] = lineno
            yield task


def write_tasks(path: str | os.PathLike[str], tasks: Iterable[Task]) -> int:
    """Write ``tasks`` as rollgen rows, atomically (temp file + rename); return how many were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for task in tasks:
                f.write(task.model_dump_json(exclude_none=True) + "\n")
                n += 1
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _json(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e.msg} at column {e.colno}") from None


def _type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _task_from_row(row: Any, default_id: str) -> Task:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {_type(row)}")
    row = dict(row)
    task_id = row.pop("id", None)
    if task_id is None:
        task_id = default_id
    elif isinstance(task_id, bool) or not isinstance(task_id, (str, int)) or task_id == "":
        raise ValueError(f"'id' must be a non-empty string or an integer, got {_type(task_id)}")
    if "responses_create_params" in row:
        fields = _nemo_gym(row)
    elif "messages" in row or "prompt" in row:
        fields = _rollgen(row)
    elif "question" in row or "problem" in row:
        fields = _plain(row)
    else:
        raise ValueError(
            "no task input: expected 'messages' or 'prompt' (rollgen), 'responses_create_params.input' "
            f"(NeMo Gym) or 'question' / 'problem'; the keys are {sorted(row)}"
        )
    try:
        return Task(id=str(task_id), **fields)
    except ValidationError as e:
        raise ValueError("; ".join(_error(err) for err in e.errors())) from None


def _error(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{loc}': {msg}" if loc else msg


def _with_metadata(fields: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    """Merge the row's unused keys into ``metadata`` (an explicit ``metadata`` wins on clashes)."""
    metadata = rest.pop("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"'metadata' must be an object, got {_type(metadata)}")
    return {**fields, "metadata": {**rest, **metadata}}


def _rollgen(row: dict[str, Any]) -> dict[str, Any]:
    fields = {k: row.pop(k) for k in ("messages", "prompt", "tools", "answer") if k in row}
    if "messages" in fields:
        _check_messages(fields["messages"], "messages")
    return _with_metadata(fields, row)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    key = "question" if "question" in row else "problem"
    question = row.pop(key)
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"'{key}' must be a non-empty string, got {_type(question)}")
    answer = row.pop("answer") if "answer" in row else row.pop("solution", None)
    return _with_metadata({"prompt": question, "answer": answer}, row)


def _nemo_gym(row: dict[str, Any]) -> dict[str, Any]:
    params = row.pop("responses_create_params")
    if not isinstance(params, dict):
        raise ValueError(f"'responses_create_params' must be an object, got {_type(params)}")
    params = dict(params)
    given = params.pop("input", None)
    if isinstance(given, str) and given.strip():
        messages = [{"role": "user", "content": given}]
    elif isinstance(given, list) and given:
        _check_messages(given, "responses_create_params.input")
        messages = [{"role": m["role"], "content": _text(m.get("content"), i)} for i, m in enumerate(given)]
    else:
        raise ValueError(
            "'responses_create_params.input' must be a non-empty string or list of {role, content} messages, "
            f"got {_type(given)}"
        )
    instructions = params.pop("instructions", None)
    if isinstance(instructions, str) and instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    fields: dict[str, Any] = {"messages": messages}
    if (tools := params.pop("tools", None)) is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise ValueError("'responses_create_params.tools' must be a list of objects")
        fields["tools"] = [_chat_tool(t) for t in tools]
    fields["answer"] = row.pop("expected_answer") if "expected_answer" in row else row.pop("answer", None)
    if params:  # sampling settings of the row; rollgen's sampler config decides, but keep them
        row["responses_create_params"] = params
    return _with_metadata(fields, row)


def _check_messages(messages: Any, key: str) -> None:
    if not isinstance(messages, list):
        raise ValueError(f"'{key}' must be a list of messages, got {_type(messages)}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"'{key}[{i}]' must be an object with a string 'role'")


def _text(content: Any, i: int) -> str:
    """Message content as text: a string, or Responses-API parts (``input_text``) joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ValueError(f"'responses_create_params.input[{i}].content' must be a string or a list of text parts")


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A Responses-API function tool (flat ``name``) as a chat-completions one (nested ``function``)."""
    if "function" in tool or "name" not in tool:
        return tool
    return {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
