"""Task files: read rollgen, NeMo Gym and Hugging Face-style rows as ``Task``s; write them back.

A task file is JSON Lines (``.jsonl``, any other suffix), a JSON array (``.json`` starting with ``[``; a
``.json`` file of lines is JSON Lines, as ``datasets.load_dataset("json")`` reads it) or Parquet
(``.parquet``, read in batches with pyarrow). Row shapes, told apart by their keys:

* rollgen: the ``Task`` fields, ``messages`` or ``prompt`` plus ``tools``, ``answer``, ``metadata``;
* NeMo Gym: ``responses_create_params.input`` (a string, or message items and tool history as
  ``function_call`` / ``function_call_output`` items: ``rollgen.nemogym.items``; ``developer`` turns as ``system``), optional
  ``responses_create_params.tools`` / ``instructions``, the ground truth in ``expected_answer`` (or ``answer``);
* plain (Hugging Face datasets): ``question`` (or ``problem``) and ``answer`` (or ``solution``).

``fields`` maps these names onto a dataset's own columns (``{"question": "instruction", "answer":
"output"}``) before the shape is told. Keys a shape does not use go into ``metadata``. A row without
``id`` gets ``<file stem>-<line number>`` (row number in JSON arrays and Parquet files).
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollgen.nemogym.items import chat_tools, prompt_messages
from rollgen.records import Task
from rollgen.servers import TaskSourceError

__all__ = ["TaskFileError", "read_tasks", "write_tasks"]


class TaskFileError(TaskSourceError):
    """A task file that cannot be read; the message starts with ``<path>:<line>: `` when a line is at fault."""


MAX_LINE_BYTES = 16 * 2**20
_PARQUET_BATCH = 1024


def read_tasks(path: str | os.PathLike[str], skipped: list[str] | None = None,
               fields: Mapping[str, str] | None = None, check: Callable[[Task], None] | None = None) -> Iterator[Task]:
    """Stream the tasks of a task file, one row at a time (blank lines skipped).

    ``fields`` maps rollgen's row keys to the file's (``{"question": "instruction"}``); ``check`` raises
    ValueError for a task its domain cannot use (a code task without tests). Raises TaskFileError at once when
    the file is missing, and while iterating at the first bad row, unless ``skipped`` is a list: then each bad
    row's message is appended to it and the row skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise TaskFileError(f"{p}: no such task file" if not p.exists() else f"{p}: not a file")
    return _tasks(p, _rows(p), skipped, dict(fields or {}), check)


def _tasks(p: Path, rows: Iterator[tuple[int, Any]], skipped: list[str] | None, fields: dict[str, str],
           check: Callable[[Task], None] | None) -> Iterator[Task]:
    """Tasks from ``(line or row number, parsed row or the ValueError it raised)``."""
    from rollgen.taskcodes import TaskCodes

    seen = TaskCodes()  # ids so far, without a Python object each (a million tasks: ~40 MB less than a dict)
    first_line = array("q")  # by code: the id's line, to name it when the id comes again
    for lineno, row in rows:
        try:
            if isinstance(row, ValueError):
                raise row
            task = _task_from_row(_mapped(row, fields), default_id=f"{p.stem}-{lineno}")
            if check is not None:
                check(task)
            if (code := seen.get(task.id)) >= 0:
                raise ValueError(f"duplicate id {task.id!r} (first on line {first_line[code]})")
        except ValueError as e:
            if skipped is None:
                raise TaskFileError(f"{p}:{lineno}: {e}") from None
            skipped.append(f"{p}:{lineno}: {e}")
            continue
        seen.code(task.id)
        first_line.append(lineno)
        yield task


def _rows(p: Path) -> Iterator[tuple[int, Any]]:
    """The file's rows by format: JSON Lines, a JSON array, or Parquet."""
    if p.suffix.lower() == ".parquet":
        return _parquet_rows(p)
    if p.suffix.lower() == ".json" and _first_char(p) == b"[":
        return _array_rows(p)
    return _jsonl_rows(p)


def _jsonl_rows(p: Path) -> Iterator[tuple[int, Any]]:
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                if len(raw) > MAX_LINE_BYTES:
                    raise ValueError(f"line is {len(raw) / 2**20:.1f} MiB, over the {MAX_LINE_BYTES >> 20} MiB limit")
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(f"not UTF-8 (bad byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                if not line.strip():
                    continue
                yield lineno, _json(line)
            except ValueError as e:
                yield lineno, e


def _first_char(p: Path) -> bytes:
    with p.open("rb") as f:
        head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head[:1]


def _array_rows(p: Path) -> Iterator[tuple[int, Any]]:
    """A ``.json`` file holding one array of rows (read whole: JSON arrays do not stream)."""
    try:
        rows = json.loads(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{p}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{p}:{e.lineno}: invalid JSON: {e.msg} at column {e.colno}") from None
    yield from enumerate(rows, 1)


def _parquet_rows(p: Path) -> Iterator[tuple[int, Any]]:
    """A Parquet file's rows, ``_PARQUET_BATCH`` at a time (pyarrow, which ``datasets`` installs)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TaskFileError(f"{p}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        batches = pq.ParquetFile(p).iter_batches(batch_size=_PARQUET_BATCH)
        n = 0
        for batch in batches:
            for row in batch.to_pylist():
                n += 1
                yield n, row
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise TaskFileError(f"{p}: not a readable Parquet file ({e})") from None


def _mapped(row: Any, fields: dict[str, str]) -> Any:
    """``row`` with the file's column names (``fields`` values) renamed to rollgen's keys."""
    if not fields or not isinstance(row, dict):
        return row
    missing = [theirs for theirs in fields.values() if theirs not in row]
    if missing:
        raise ValueError(f"no column {', '.join(map(repr, missing))} (server.fields maps to it); "
                         f"the keys are {sorted(row)}")
    renamed = {mine: row[theirs] for mine, theirs in fields.items()}
    return {**{k: v for k, v in row.items() if k not in fields.values()}, **renamed}


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
    # input items (messages, and tool history as function_call / function_call_output items) and instructions
    messages = prompt_messages({"input": params.pop("input", None), "instructions": params.pop("instructions", None)})
    fields: dict[str, Any] = {"messages": messages}
    if (tools := params.pop("tools", None)) is not None:
        fields["tools"] = chat_tools(tools) or []
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
