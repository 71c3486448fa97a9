"""Code: the share of a task's unit tests that the completion's code passes, run in the sandbox and
judged outside it.

Tests come from ``task.metadata[tests_key]``, in one of two shapes:

* assert statements (``["assert add(1, 2) == 3", ...]``, each a small program: setup lines, loops and a
  HumanEval ``check(candidate)`` are fine): ``rollgen.verifiers.probes`` splits each assert into the values
  the code must compute, which go in, and the check with its expected values, which stays out. The
  solution is loaded once as module ``solution`` (its ``if __name__ == "__main__"`` block does not run),
  then each test runs in a copy of its namespace with ``test_timeout_s``;
* stdin/stdout cases (``[{"input": "1 2\\n", "output": "3"}, ...]``): the solution runs as ``__main__``,
  once per case, in a fresh process and /tmp; only the inputs go in, and its stdout is compared outside
  (trailing whitespace ignored).

The code is the last fenced block (```python, ```py or ```), else the whole answer. ``mode: fraction``
(default) gives partial credit, ``all`` gives 1 only when every test passes. A solution that crashes,
hangs, floods its output or runs out of memory fails its tests (reward); a sandbox that cannot run raises
(verifier_error), and so does a machine without user namespaces unless ``isolation: rlimits`` opts into
the weaker mode (``rollgen.verifiers.sandbox``).
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.validation.cases import Case
from rollgen.verifiers.extract import answer_region
from rollgen.verifiers.probes import judge, split
from rollgen.verifiers.sandbox import Execution, Isolation, Limits, run_probes, run_program

__all__ = ["CodeTests", "extract_code"]

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_OPEN = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n", re.IGNORECASE)
_MAX_REPORTED = 20


def extract_code(text: str) -> str | None:
    """The last fenced code block (one opened after the last closed block and never closed counts: a model
    that stopped before its closing fence), else the whole answer region (None when empty)."""
    region = answer_region(text)
    blocks = list(_FENCE.finditer(region))
    after = blocks[-1].end() if blocks else 0
    opened = list(_OPEN.finditer(region, after))
    if opened:
        code = region[opened[-1].end():]
    else:
        code = blocks[-1].group(1) if blocks else region
    return code if code.strip() else None


def _same_output(got: str, want: str) -> bool:
    def lines(s: str) -> list[str]:
        return [ln.rstrip() for ln in s.strip().splitlines()]

    return lines(got) == lines(want)


class CodeTests(Verifier):
    """Fraction of unit tests passed by the completion's code, run in the sandbox and judged outside it."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        tests_key: str = Field("tests", description="task.metadata key holding the tests")
        mode: Literal["fraction", "all"] = "fraction"
        timeout_s: float = Field(10.0, gt=0, le=3600, description="wall clock per sandbox process")
        test_timeout_s: float = Field(2.0, gt=0, le=3600, description="per assert test")
        memory_mb: int = Field(1024, ge=64, description="address space per process (RLIMIT_AS)")
        file_size_mb: int = Field(16, ge=1, description="largest file the code may write (RLIMIT_FSIZE)")
        tmp_mb: int = Field(64, ge=1, description="size of the code's private /tmp (tmpfs)")
        max_processes: int = Field(32, ge=1, le=4096, description="processes and threads at once (RLIMIT_NPROC)")
        max_output_kb: int = Field(1024, ge=1, description="stdout and stderr each; more kills the run")
        isolation: Isolation = Field("namespaces", description="namespaces | rlimits: weaker, without namespaces")
        max_concurrency: int | None = Field(None, ge=1, description="sandboxes at once, shared by the run's code "
                                               "verifiers (the first one's number); null = CPU count")
        python: str | None = Field(None, description="interpreter for the code (Python 3.9+); null = rollgen's own")

    params: Params
    name = "code"

    def validation_cases(self, task: Task, other: Task | None) -> list[Case] | None:
        """Cases for ``rollgen validate`` from a reference solution (``task.metadata["solution"]``, else a
        string ``task.answer``): it must pass every test, in a fence, with prose, or bare; an empty answer,
        a stub, the solution cut in half, another task's solution, the question, and attempts to print fake
        result lines or write them to the probe channel must not. None without a reference solution."""
        reference = task.metadata.get("solution") or (task.answer if isinstance(task.answer, str) else None)
        if not reference:
            return None
        reference = reference.strip("\n")
        lines = reference.splitlines()
        question = next((m.get("content") for m in reversed(task.chat()) if m.get("role") == "user"), "") or ""
        cases = [
            Case("reference_fenced", True, f"```python\n{reference}\n```"),
            Case("reference_with_prose", True, f"Here is my solution:\n\n```python\n{reference}\n```\n\n"
                                               "It handles every case in the statement."),
            Case("reference_bare", True, reference),
            Case("empty", False, ""),
            Case("stub", False, "```python\ndef solve(*args, **kwargs):\n    pass\n```"),
            Case("question_repeated", False, str(question)),
            Case("forged_results", False, "```python\nfor i in range(100):\n    print([i, True, None])\n```"),
            Case("forged_channel", False, "```python\nimport os\nfor fd in range(3, 10):\n    for i in range(100):\n"
                 "        try:\n            os.write(fd, repr(('end', i, None)).encode() + b'\\n')\n"
                 "        except OSError:\n            pass\nos._exit(0)\n```"),
        ]
        if len(lines) > 1:
            half = "\n".join(lines[: len(lines) // 2])
            cases.append(Case("truncated", False, f"```python\n{half}", finish_reason="length"))
        other_ref = other.metadata.get("solution") if other is not None else None
        if other_ref and other_ref.strip("\n") != reference:
            cases.append(Case("other_task", False, f"```python\n{other_ref.strip()}\n```"))
        return cases

    def _limits(self) -> Limits:
        p = self.params
        return Limits(timeout_s=p.timeout_s, memory_mb=p.memory_mb, file_size_mb=p.file_size_mb, tmp_mb=p.tmp_mb,
                      max_processes=p.max_processes, max_output_bytes=p.max_output_kb << 10, isolation=p.isolation)

    def _semaphore(self) -> asyncio.Semaphore:
        """The runtime's limit on sandboxes at once, shared by every code verifier of the run."""
        return self.runtime.limit("sandbox", self.params.max_concurrency or os.cpu_count() or 1)

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        tests = task.metadata.get(self.params.tests_key)
        if isinstance(tests, str):
            tests = [tests]
        if not tests or not isinstance(tests, list):
            raise ValueError(f"the task has no tests in metadata[{self.params.tests_key!r}]")
        code = extract_code(rollout.completion)
        details: dict[str, Any] = {"code_found": code is not None, "total": len(tests), "decided": True}
        if code is None:
            details.update(passed=0, results=[])
            return Verdict(reward=0.0, details=details, verifier=self.name)
        async with self._semaphore():
            if all(isinstance(t, dict) for t in tests):
                results, meta = await self._io_tests(code, tests)
            else:
                results, meta = await self._assert_tests(code, [str(t) for t in tests])
        passed = sum(ok for ok, _ in results)
        details.update(meta, passed=passed, results=[
            {"test": i, "passed": ok, **({"error": err} if err else {})} for i, (ok, err) in enumerate(results)
        ][:_MAX_REPORTED])
        reward = passed / len(tests) if self.params.mode == "fraction" else float(passed == len(tests))
        return Verdict(reward=reward, details=details, verifier=self.name)

    async def _assert_tests(self, code: str, tests: list[str]) -> tuple[list[tuple[bool, str | None]], dict]:
        splits = [split(t) for t in tests]
        run = await run_probes(code, [s.program for s in splits], self._limits(), self.params.test_timeout_s,
                               python=self.params.python)
        results = await asyncio.to_thread(judge, splits, run.channel, _why_unfinished(run, self.params.timeout_s))
        return results, {"timed_out": run.timed_out, "isolation": self.params.isolation}

    async def _io_tests(self, code: str, cases: list[dict]) -> tuple[list[tuple[bool, str | None]], dict]:
        runs = await run_program(code, [str(c.get("input", "")) for c in cases], self._limits(),
                                 python=self.params.python)
        results: list[tuple[bool, str | None]] = []
        for case, run in zip(cases, runs):
            if run.timed_out or run.output_exceeded or run.returncode != 0:
                last = (run.stderr.strip().splitlines() or [""])[-1][:300]
                results.append((False, last if run.returncode > 0 and last else
                                _why_unfinished(run, self.params.timeout_s)))
            elif not _same_output(run.stdout, str(case.get("output", ""))):
                results.append((False, f"wrong output: {run.stdout.strip()[:100]!r}"))
            else:
                results.append((True, None))
        return results, {"timed_out": any(r.timed_out for r in runs), "isolation": self.params.isolation}


def _why_unfinished(run: Execution, timeout_s: float) -> str:
    if run.timed_out:
        return f"timed out after {timeout_s:g}s"
    if run.output_exceeded:
        return "output limit exceeded"
    if run.returncode < 0:
        return f"killed by signal {-run.returncode}"
    return f"exit code {run.returncode}"
