"""Code: the share of a task's unit tests that the completion's code passes, run in the sandbox.

Tests come from ``task.metadata[tests_key]``, in one of two shapes:

* assert statements (``["assert add(1, 2) == 3", ...]``): the solution is loaded once (as module
  ``solution``, so its ``if __name__ == "__main__"`` block does not run), then each test runs in a copy of
  its namespace with ``test_timeout_s``;
* stdin/stdout cases (``[{"input": "1 2\\n", "output": "3"}, ...]``): the solution runs as ``__main__``,
  once per case, in its own sandboxed process; trailing whitespace is ignored when comparing.

The code is the last fenced block (```python, ```py or ```), else the whole answer. ``mode: fraction``
(default) gives partial credit, ``all`` gives 1 only when every test passes. A solution that crashes,
hangs or runs out of memory fails its tests (reward); a sandbox that cannot run raises (verifier_error).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.cases import Case
from rollgen.verifiers.extract import answer_region
from rollgen.verifiers.sandbox import Limits, Network, run_python

__all__ = ["CodeTests", "extract_code"]

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_MAX_REPORTED = 20

# The harness (assert mode). It runs inside the sandbox after the limits prelude. The solution cannot see
# the result channel's nonce except by inspecting the harness's frames: a fence for honest code, not for
# code written against this harness (see rollgen/verifiers/sandbox.py).
_ASSERT_HARNESS = """
def _main():
    import json, os, signal
    with open("_spec.json") as f:
        spec = json.load(f)
    os.remove("_spec.json")
    nonce = spec.pop("nonce")
    out = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)

    class TestTimeout(BaseException):
        pass

    def on_alarm(*_):
        raise TestTimeout

    signal.signal(signal.SIGALRM, on_alarm)

    def report(i, ok, error):
        out.write(nonce + json.dumps([i, ok, error]) + "\\n")
        out.flush()

    def run(source, name, ns, seconds):
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            exec(compile(source, name, "exec"), ns)
            return None
        except TestTimeout:
            return f"timed out after {seconds:g}s"
        except BaseException as e:
            return (f"{type(e).__name__}: {e}")[:300]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    ns = {"__name__": "solution"}
    load_error = run(spec["code"], "solution.py", ns, spec["load_timeout_s"])
    for i, test in enumerate(spec["tests"]):
        if load_error:
            report(i, False, "the solution failed to load: " + load_error)
            continue
        error = run(test, f"test_{i}", dict(ns), spec["test_timeout_s"])
        report(i, error is None, error)

_main()
"""

_IO_HARNESS = "import runpy\nrunpy.run_path('solution.py', run_name='__main__')\n"


def extract_code(text: str) -> str | None:
    """The last fenced code block, else the whole answer region (None when empty)."""
    region = answer_region(text)
    blocks = _FENCE.findall(region)
    code = blocks[-1] if blocks else region
    return code if code.strip() else None


def _same_output(got: str, want: str) -> bool:
    def lines(s: str) -> list[str]:
        return [ln.rstrip() for ln in s.strip().splitlines()]

    return lines(got) == lines(want)


class CodeTests(Verifier):
    """Fraction of unit tests passed by the completion's code, in a sandboxed subprocess."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        tests_key: str = Field("tests", description="task.metadata key holding the tests")
        mode: Literal["fraction", "all"] = "fraction"
        timeout_s: float = Field(10.0, gt=0, le=3600, description="wall clock per sandbox process")
        test_timeout_s: float = Field(2.0, gt=0, le=3600, description="per assert test")
        memory_mb: int = Field(1024, ge=64, description="address-space limit (RLIMIT_AS)")
        file_size_mb: int = Field(16, ge=1)
        max_output_kb: int = Field(1024, ge=1)
        network: Network = Field("auto", description="auto: isolate when unshare works | isolated: required | allowed")
        max_concurrency: int | None = Field(None, ge=1, description="sandboxes at once; null = CPU count")
        python: str | None = Field(None, description="interpreter for the code; null = rollgen's own")

    params: Params
    name = "code"

    def __init__(self, params: Params):
        super().__init__(params)
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def validation_cases(self, task: Task, other: Task | None) -> list[Case] | None:
        """Cases for ``rollgen validate`` from a reference solution (``task.metadata["solution"]``, else a
        string ``task.answer``): it must pass every test, in a fence, with prose, or bare; an empty answer,
        a stub, the solution cut in half, another task's solution, the question, and an attempt to print
        fake result lines must not. None without a reference solution."""
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
        return Limits(timeout_s=p.timeout_s, memory_mb=p.memory_mb, file_size_mb=p.file_size_mb,
                      max_output_bytes=p.max_output_kb << 10, network=p.network)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.params.max_concurrency or os.cpu_count() or 1))
        return self._slots[1]

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
        limits, nonce = self._limits(), secrets.token_hex(16)
        spec = {"nonce": nonce, "code": code, "tests": tests, "test_timeout_s": self.params.test_timeout_s,
                "load_timeout_s": self.params.test_timeout_s}
        res = await run_python(limits.prelude() + _ASSERT_HARNESS, {"_spec.json": json.dumps(spec)}, limits,
                               python=self.params.python)
        got: dict[int, tuple[bool, str | None]] = {}
        for line in res.stdout.splitlines():
            if line.startswith(nonce):
                i, ok, err = json.loads(line[len(nonce):])
                got[int(i)] = (bool(ok), err)
        missing = "timed out (whole run)" if res.timed_out else f"not run (exit code {res.returncode})"
        results = [got.get(i, (False, missing)) for i in range(len(tests))]
        return results, {"timed_out": res.timed_out, "network_isolated": res.network_isolated}

    async def _io_tests(self, code: str, cases: list[dict]) -> tuple[list[tuple[bool, str | None]], dict]:
        limits = self._limits()
        results: list[tuple[bool, str | None]] = []
        timed_out = isolated = False
        for case in cases:
            res = await run_python(limits.prelude() + _IO_HARNESS, {"solution.py": code}, limits,
                                   stdin=str(case.get("input", "")), python=self.params.python)
            timed_out |= res.timed_out
            isolated = res.network_isolated
            if res.timed_out:
                results.append((False, f"timed out after {limits.timeout_s:g}s"))
            elif res.returncode != 0:
                results.append((False, (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1][:300]))
            elif not _same_output(res.stdout, str(case.get("output", ""))):
                results.append((False, f"wrong output: {res.stdout.strip()[:100]!r}"))
            else:
                results.append((True, None))
        return results, {"timed_out": timed_out, "network_isolated": isolated}
