"""The base of servers whose tasks are rows of a task file: a domain server adds only its prompt, tools and fields.

``TaskFileServer`` reads ``data_path`` (JSON Lines, a JSON array or Parquet; rollgen, NeMo Gym or Hugging
Face-style rows, with a ``fields`` mapping onto a dataset's own columns: ``rollgen.servers.taskrows``), or,
without one, the server's own tasks (``own_tasks``: bundled or generated). It handles what every such server
needs: bad rows (an error naming ``file:line``, or skipped and reported with ``on_bad_row=skip``), repeated
prompts (``unique_prompts``), the user turn (``prompt_template``, then ``instruction`` where the prompt has no
answer instruction of its own, then ``system_prompt``), a check before any work, and the fingerprint the
rollout cache keys on (the file's hash; the run's ``limit`` is applied by the engine as tasks stream).

A domain server subclasses it::

    class CodeServer(TaskFileServer):
        class Params(TaskFileServer.Params):
            instruction: str | None = "Answer with one ```python block."

        def own_tasks(self) -> Iterator[Task]:      # tasks when no data_path is given
            ...

        def validate_task(self, task: Task) -> None:  # optional: a row this domain cannot use is a bad row
            if not task.metadata.get("tests"):
                raise ValueError("no 'tests'")

        def prompted(self, task: Task) -> Task:     # optional: more than the template (options, tools)
            return super().prompted(task)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rollgen.records import Task
from rollgen.servers import ResourceServer, TaskSourceError
from rollgen.servers.prompts import with_instruction
from rollgen.servers.taskrows import TaskFileError, read_tasks, write_tasks

__all__ = ["TaskFileError", "TaskFileServer", "bundled_tasks", "check_selection", "file_sha256", "read_tasks",
           "unique_prompts", "write_tasks"]

log = logging.getLogger("rollgen")


class TaskFileServer(ResourceServer):
    """Tasks from ``data_path``, else the server's own (``own_tasks``); the user turn built from the params."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        data_path: str | None = Field(None, description="a task file (JSONL, JSON array or Parquet) used instead "
                                                        "of the server's own tasks")
        fields: dict[str, str] | None = Field(
            None, description="rollgen row key -> the file's column (e.g. {question: instruction, answer: output})")
        system_prompt: str | None = None
        prompt_template: str = Field("{question}", description="how a bare question becomes the user turn")
        instruction: str | None = Field(
            None, description="appended on a new line to prompts that carry no answer instruction of their own")
        unique_prompts: bool | None = Field(
            None, description="skip tasks whose normalised prompt repeats an earlier task's; null: off for "
                              "data_path (a server's own tasks decide for themselves)")

        @field_validator("prompt_template")
        @classmethod
        def _check_template(cls, template: str) -> str:
            if "{question}" not in template:
                raise ValueError("must contain '{question}', where the problem text goes")
            return template

    params: Params

    def tasks(self, skipped: list[str] | None = None) -> Iterator[Task]:
        p = self.params
        if p.data_path:
            tasks = (self.prompted(t) for t in read_tasks(p.data_path, skipped, p.fields, self.validate_task))
            yield from (unique_prompts(tasks, p.data_path) if p.unique_prompts else tasks)
        else:
            yield from (self.prompted(t) for t in self.own_tasks())

    def own_tasks(self) -> Iterator[Task]:
        """The server's own tasks (bundled or generated), as bare ``prompt`` or ``messages``; used without
        ``data_path``. The default has none."""
        raise TaskSourceError(f"{type(self).__name__} has no tasks of its own: set server.data_path to a task file")

    def validate_task(self, task: Task) -> None:
        """Raise ValueError when a task read from ``data_path`` lacks what this domain needs (a bad row: an
        error naming ``file:line``, or skipped with ``on_bad_row=skip``). The default accepts every task."""

    def prompted(self, task: Task) -> Task:
        """Apply the template and instruction to a bare ``prompt``; prepend the system prompt unless there is one.
        Tasks given as chat ``messages`` are sent as they are."""
        p = self.params
        if task.messages:
            messages = [dict(m) for m in task.messages]
        else:
            text = with_instruction(p.prompt_template.replace("{question}", task.prompt or ""), p.instruction)
            messages = [{"role": "user", "content": text}]
        if p.system_prompt and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": p.system_prompt})
        return task.model_copy(update={"messages": messages, "prompt": None})

    def added_text(self) -> list[str]:
        """The prompt template around ``{question}`` and the instruction."""
        p = self.params
        return [part for part in (*p.prompt_template.split("{question}"), p.instruction) if part and part.strip()]

    def check(self) -> None:
        """Before any work: a task file has a row (its rows are checked as they are read). Raises ``ValueError``."""
        if self.params.data_path:
            path = Path(self.params.data_path)
            if path.is_file() and not _has_content(path):
                raise ValueError(f"data_path: {path}: no tasks: the file is empty")

    def fingerprint(self) -> dict[str, Any]:
        """The params (``fields`` left out when unset) plus the task file's hash with ``data_path``."""
        fp = super().fingerprint()
        if not fp.get("fields"):
            fp.pop("fields", None)
        if self.params.data_path:
            fp["data_sha256"] = file_sha256(Path(self.params.data_path))
        return fp


def unique_prompts(tasks: Iterator[Task], source: str) -> Iterator[Task]:
    """``tasks`` without those whose user text repeats an earlier task's (normalised); says how many went."""
    from rollgen.quality.text import prompt_key
    from rollgen.quality.view import prompt_text

    seen: set[bytes] = set()
    repeats = 0
    for task in tasks:
        key = prompt_key(prompt_text(task.chat()))
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        yield task
    if repeats:
        log.warning("%s: %d tasks skipped whose prompt repeats an earlier task's (server.unique_prompts)", source, repeats)


def bundled_tasks(path: Path, check: Callable[[Task], None], key: str, wanted: list[str] | None) -> Iterator[Task]:
    """The tasks of a server's bundled task file whose ``metadata[key]`` is one of ``wanted`` (all: None)."""
    keep = set(wanted) if wanted is not None else None
    for task in read_tasks(path, check=check):
        if keep is None or task.metadata.get(key) in keep:
            yield task


def check_selection(path: Path, key: str, wanted: list[str] | None, param: str) -> None:
    """ValueError naming ``param`` when ``wanted`` names a ``metadata[key]`` no task of ``path`` has."""
    if wanted is None:
        return
    known = {str(t.metadata.get(key)) for t in read_tasks(path)}
    if unknown := sorted(set(wanted) - known):
        raise ValueError(f"{param}: no bundled tasks with {key} {', '.join(map(repr, unknown))}; the {key}s are "
                         f"{', '.join(sorted(known))}")


def _has_content(path: Path) -> bool:
    with path.open("rb") as f:
        return any(line.strip() for line in f)


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's bytes; None when it does not exist (``tasks()`` reports that)."""
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
