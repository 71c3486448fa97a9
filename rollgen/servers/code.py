"""Python programming tasks with tests, scored by running the completion's code in the sandbox (``server=code``).

A task is a prompt plus ``metadata.tests``: assert statements (``"assert add(2, 3) == 5"``) or stdin/stdout
cases (``{"input": "1 2\\n", "output": "3"}``), which ``rollgen.verifiers.code.CodeTests`` runs in the sandbox and
judges outside it; ``metadata.solution``, when given, is the reference solution ``rollgen validate`` checks
the verifier with. ``conf/server/code.yaml`` brings the code verifier and the code guards with it.

Without ``data_path`` the bundled sets named in ``sets`` are used, in that order:

* ``rollgen``: rollgen's own 40 tasks (``data/code_tasks.jsonl``): functions on strings, lists, dicts,
  math, parsing, classes and small algorithms, and stdin/stdout programs, each with ``difficulty`` (easy,
  medium, hard) and ``topic`` in its metadata;
* ``humaneval``: OpenAI's HumanEval, 164 functions (``rollgen.servers.humaneval``, MIT, shipped unchanged).

With ``data_path``, any task file whose rows carry ``tests`` (a top-level ``tests`` key lands in ``metadata``;
``fields`` maps another column onto it: ``server.fields={tests: test_list}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from rollgen.records import Task
from rollgen.servers.humaneval import HUMANEVAL, humaneval_tasks
from rollgen.servers.taskfile import TaskFileServer, file_sha256, read_tasks

__all__ = ["CODE_TASKS", "CodeServer"]

DEFAULT_INSTRUCTION = "Write your answer in Python, in one ```python code block."
CODE_TASKS = Path(__file__).resolve().parent / "data" / "code_tasks.jsonl"
CodeSet = Literal["rollgen", "humaneval"]


class CodeServer(TaskFileServer):
    """Python tasks with tests: the bundled sets, or ``data_path``'s rows with ``tests``; no tools."""

    class Params(TaskFileServer.Params):
        instruction: str | None = Field(
            DEFAULT_INSTRUCTION, description="appended to prompts that do not say how to answer; null: none")
        sets: list[CodeSet] = Field(["rollgen", "humaneval"], min_length=1,
                                    description="bundled task sets used without data_path: rollgen, humaneval")

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        for name in dict.fromkeys(self.params.sets):
            if name == "rollgen":
                yield from read_tasks(CODE_TASKS, check=self.validate_task)
            else:
                yield from humaneval_tasks()

    def validate_task(self, task: Task) -> None:
        """A task needs a non-empty list of tests: assert strings, or ``{input, output}`` cases."""
        key = "tests"
        tests = task.metadata.get(key)
        if isinstance(tests, str):
            tests = [tests]
        if not isinstance(tests, list) or not tests:
            raise ValueError(f"task {task.id!r} has no tests: give '{key}' as a list of assert statements or "
                             "{input, output} cases")
        if not (all(isinstance(t, str) and t.strip() for t in tests) or all(isinstance(t, dict) for t in tests)):
            raise ValueError(f"task {task.id!r}: '{key}' must be all assert strings or all {{input, output}} objects")

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the task file's hash, or the hashes of the bundled sets."""
        fp = super().fingerprint()
        if self.params.data_path:
            fp.pop("sets", None)
        else:
            files = {"rollgen": CODE_TASKS, "humaneval": HUMANEVAL}
            fp["tasks_sha256"] = {name: file_sha256(files[name]) for name in self.params.sets}
        return fp
