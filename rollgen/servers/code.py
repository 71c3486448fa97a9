"""Python programming tasks with tests, scored by running the completion's code in the sandbox (``server=code``).

A task is a prompt plus ``metadata.tests``: assert statements (``"assert add(2, 3) == 5"``) or stdin/stdout
cases (``{"input": "1 2\\n", "output": "3"}``), which ``rollgen.verifiers.code.CodeTests`` runs in the sandbox and
judges outside it; ``metadata.solution``, when given, is the reference solution ``rollgen validate`` checks
the verifier with. Without ``data_path`` the server's own tasks are used (a handful today); with it, any task
file whose rows carry ``tests`` (a top-level ``tests`` key lands in ``metadata``; ``fields`` maps another
column onto it: ``server.fields={tests: test_list}``). ``conf/server/code.yaml`` brings the code verifier and the code guards with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from rollgen.records import Task
from rollgen.servers.taskfile import TaskFileServer

__all__ = ["CodeServer"]

DEFAULT_INSTRUCTION = "Write your answer in Python, in one ```python code block."

_TASKS: tuple[dict[str, Any], ...] = (
    {"id": "code-add",  # HumanEval style: the prompt gives the signature, which the solution repeats
     "prompt": 'Complete this function:\n\n```python\ndef add(a, b):\n    """Return the sum of the two numbers a '
               'and b."""\n```',
     "tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(0.5, 0.25) == 0.75"],
     "solution": 'def add(a, b):\n    """Return the sum of the two numbers a and b."""\n    return a + b\n'},
    {"id": "code-palindrome",
     "prompt": "Write a Python function `is_palindrome(s)` that returns True when the string `s` reads the same "
               "forwards and backwards, ignoring case and every character that is not a letter or a digit.",
     "tests": ["assert is_palindrome('A man, a plan, a canal: Panama') is True", "assert is_palindrome('') is True",
               "assert is_palindrome('rollgen') is False", "assert is_palindrome('No lemon, no melon') is True"],
     "solution": "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]\n"},
    {"id": "code-second-largest",
     "prompt": "Write a Python function `second_largest(xs)` that returns the second largest distinct value in "
               "the list `xs`, or None when it has fewer than two distinct values.",
     "tests": ["assert second_largest([3, 1, 4, 1, 5]) == 4", "assert second_largest([7, 7]) is None",
               "assert second_largest([]) is None", "assert second_largest([-2, -5, -2]) == -5"],
     "solution": "def second_largest(xs):\n    values = sorted(set(xs))\n    return values[-2] if len(values) > 1 "
                 "else None\n"},
    {"id": "code-run-length",
     "prompt": "Write a Python function `run_length(s)` that encodes the string `s` as a list of "
               "(character, count) tuples, one per run of equal characters, in order.",
     "tests": ["assert run_length('aaabcc') == [('a', 3), ('b', 1), ('c', 2)]", "assert run_length('') == []",
               "assert run_length('x') == [('x', 1)]"],
     "solution": "def run_length(s):\n    out = []\n    for c in s:\n        if out and out[-1][0] == c:\n"
                 "            out[-1] = (c, out[-1][1] + 1)\n        else:\n            out.append((c, 1))\n"
                 "    return out\n"},
    {"id": "code-sum-stdin",
     "prompt": "Write a Python program that reads one line of space-separated integers from standard input and "
               "prints their sum.",
     "tests": [{"input": "1 2 3\n", "output": "6"}, {"input": "-4 4\n", "output": "0"},
               {"input": "10\n", "output": "10"}],
     "solution": "print(sum(int(x) for x in input().split()))\n"},
)


class CodeServer(TaskFileServer):
    """Python tasks with tests: the server's own, or ``data_path``'s rows with ``tests``; no tools."""

    class Params(TaskFileServer.Params):
        instruction: str | None = Field(
            DEFAULT_INSTRUCTION, description="appended to prompts that do not say how to answer; null: none")

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        for row in _TASKS:
            meta = {"tests": row["tests"], "solution": row["solution"], "source_dataset": "rollgen-code"}
            yield Task(id=row["id"], prompt=row["prompt"], metadata=meta)

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
        """The params plus the task file's hash, or the hash of the server's own tasks."""
        fp = super().fingerprint()
        if not self.params.data_path:
            fp["tasks_sha256"] = hashlib.sha256(json.dumps(_TASKS, sort_keys=True).encode()).hexdigest()
        return fp
