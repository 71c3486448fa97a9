"""The code verifier: partial credit, time and memory limits, no network, a scrubbed environment, a private
working directory, stdin/stdout cases, and sandbox failures as verifier errors (the sandbox itself:
tests/test_sandbox.py; hostile code: tests/test_sandbox_hostile.py)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers.code import CodeTests, extract_code
from rollgen.verifiers.sandbox import SandboxError
from tests.conftest import started, verify_once

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4", "assert add(0, 0) == 0"]


def run(completion: str, tests: Any = ADD_TESTS, **params: Any) -> Verdict:
    v = CodeTests(CodeTests.Params.model_validate({"timeout_s": 10, "test_timeout_s": 2, **params}))
    task = Task(id="t", prompt="write add", metadata={"tests": tests})
    r = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=completion, status="ok")
    return verify_once(v, task, r)


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}\n```\nDone."


def test_all_tests_pass_and_fraction_for_partial() -> None:
    ok = run(fenced("def add(a, b):\n    return a + b"))
    assert ok.reward == 1.0 and ok.details["passed"] == 4 and ok.details["total"] == 4
    wrong = run(fenced("def add(a, b):\n    return a * b if a == b else a + b"))  # 2*2 == 4, 0*0 == 0: 4 pass
    assert wrong.reward == 1.0
    partial = run(fenced("def add(a, b):\n    return abs(a) + b"))  # fails add(-1, 1)
    assert partial.reward == 0.75
    failed = [r for r in partial.details["results"] if not r["passed"]]
    assert [r["test"] for r in failed] == [1] and failed[0]["error"].startswith("AssertionError")
    assert run(fenced("def add(a, b):\n    return abs(a) + b"), mode="all").reward == 0.0


def test_no_code_and_broken_code_score_zero() -> None:
    assert run("").reward == 0.0 and run("").details["code_found"] is False
    broken = run(fenced("def add(a, b) return a + b"))
    assert broken.reward == 0.0 and "SyntaxError" in broken.details["results"][0]["error"]


def test_a_hanging_test_times_out_alone() -> None:
    code = "def add(a, b):\n    while a < 0:\n        pass\n    return a + b"
    t0 = time.perf_counter()
    v = run(fenced(code), test_timeout_s=0.5)
    assert time.perf_counter() - t0 < 8
    assert v.reward == 0.75 and "timed out" in v.details["results"][1]["error"]


def test_the_whole_run_is_killed_at_timeout_s() -> None:
    code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ndef add(a, b):\n    while True:\n        pass"
    t0 = time.perf_counter()
    v = run(fenced(code), timeout_s=1.5, test_timeout_s=1)
    assert time.perf_counter() - t0 < 6
    assert v.reward == 0.0 and v.details["timed_out"] is True


def test_memory_limit() -> None:
    v = run(fenced("blob = bytearray(2 * 1024**3)\ndef add(a, b):\n    return a + b"), memory_mb=256)
    assert v.reward == 0.0 and "MemoryError" in v.details["results"][0]["error"]


def test_environment_is_scrubbed_and_cwd_is_a_fresh_temp_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text("x")
    code = ("import os\nCWD = os.getcwd()\n"
            "def add(a, b):\n    return a + b")
    tests = ["assert 'OPENAI_API_KEY' not in os.environ", "assert not os.path.exists('secret.txt')",
             "assert CWD != " + repr(str(tmp_path)), "assert os.environ['HOME'] == CWD"]
    v = run(fenced(code), tests=tests)
    assert v.reward == 1.0, v.details["results"]
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("rollgen-sandbox-*")]
    assert not leftovers


def test_no_network() -> None:
    code = ("import socket\n"
            "def reach():\n    s = socket.create_connection(('1.1.1.1', 53), timeout=2)\n    s.close()\n    return True\n")
    v = run(fenced(code), tests=["assert reach()"])
    assert v.reward == 0.0 and v.details["isolation"] == "namespaces"
    assert "Network is unreachable" in v.details["results"][0]["error"]


def test_isolation_is_namespaces_unless_the_weaker_mode_is_chosen() -> None:
    assert CodeTests.Params().isolation == "namespaces"
    assert run(fenced("def add(a, b):\n    return a + b"), isolation="rlimits").details["isolation"] == "rlimits"
    with pytest.raises(ValidationError, match="isolation"):
        CodeTests.Params.model_validate({"isolation": "none"})
    with pytest.raises(ValidationError, match="network"):  # the old knob is gone, not silently ignored
        CodeTests.Params.model_validate({"network": "allowed"})


def test_stdin_stdout_cases() -> None:
    cases = [{"input": "1 2\n", "output": "3"}, {"input": "5 5\n", "output": "10\n"}, {"input": "0 1", "output": "1"}]
    v = run(fenced("a, b = map(int, input().split())\nprint(a + b)"), tests=cases)
    assert v.reward == 1.0
    off = run(fenced("a, b = map(int, input().split())\nprint(a + b + (a == 5))"), tests=cases)
    assert off.reward == pytest.approx(2 / 3) and "wrong output" in off.details["results"][1]["error"]
    crash = run(fenced("raise SystemExit(3)"), tests=cases)
    assert crash.reward == 0.0


def test_tests_as_small_programs_and_the_humaneval_shape() -> None:
    tests = ["def check(candidate):\n    assert candidate([3, 1, 2]) == [1, 2, 3]\n"
             "    for n in range(4):\n        assert len(candidate(list(range(n)))) == n\ncheck(sort)",
             "xs = [5, 4]\nys = sort(xs)\nassert ys == [4, 5] and xs == [5, 4]",
             "assert abs(mean(sort([1.0, 2.0])) - 1.5) < 1e-9",
             "import numpy as np\nassert sort(np.array([2, 1])) == [1, 2]",
             "try:\n    sort(None)\n    assert False, 'sorting None must raise'\nexcept TypeError:\n    pass"]
    honest = "def sort(xs):\n    return sorted(xs)\ndef mean(xs):\n    return sum(xs) / len(xs)"
    assert run(fenced(honest), tests=tests).reward == 1.0
    in_place = "def sort(xs):\n    xs.sort()\n    return xs\ndef mean(xs):\n    return sum(xs) / len(xs)"
    v = run(fenced(in_place), tests=tests)
    assert v.reward == 0.6 and "xs == [5, 4]" in v.details["results"][1]["error"]
    assert "AttributeError" in v.details["results"][4]["error"]  # None.sort(): not the TypeError the test expects


def test_printing_a_fake_result_line_does_not_pass_tests() -> None:
    code = "print('[0, true, null]')\nprint('[1, true, null]')\ndef add(a, b):\n    return 0"
    assert run(fenced(code), tests=[ADD_TESTS[0], ADD_TESTS[2]]).reward == 0.0


def test_a_sandbox_that_cannot_start_is_a_verifier_error() -> None:
    with pytest.raises(SandboxError, match="cannot start the sandbox"):
        run(fenced("def add(a, b):\n    return a + b"), python="/nonexistent/python3")


def test_a_task_without_tests_is_an_error() -> None:
    with pytest.raises(ValueError, match="no tests"):
        run(fenced("x = 1"), tests=[])


def test_extract_code_takes_the_last_fence() -> None:
    assert extract_code("```python\na = 1\n```\nbetter:\n```py\na = 2\n```") == "a = 2\n"
    assert extract_code("<think>```python\nx\n```</think>plain code") == "plain code"
    assert extract_code("   ") is None


def test_concurrency_is_bounded() -> None:
    async def main() -> float:
        v = CodeTests(CodeTests.Params(max_concurrency=2, timeout_s=10))
        task = Task(id="t", prompt="q", metadata={"tests": ["import time; time.sleep(0.4)"]})
        r = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=fenced("x = 1"), status="ok")
        t0 = time.perf_counter()
        async with started(v):
            out = await asyncio.gather(*(v.verify(task, r) for _ in range(4)))
        assert all(o.reward == 1.0 for o in out)
        return time.perf_counter() - t0

    assert asyncio.run(main()) >= 0.8  # 4 runs of 0.4 s, 2 at a time
