"""Scripts that use rollgen's rewards exit quietly, and rollgen's workers never run the user's main script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _python(script: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_trainer_script_without_main_guard_runs_once_and_gets_its_reward(tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    script = tmp_path / "train.py"  # no `if __name__ == "__main__":`, as trainer scripts often are
    script.write_text(textwrap.dedent(f"""
        from rollgen.integrations.reward import RewardScorer
        with open({str(runs)!r}, "a") as f:
            f.write("ran\\n")
        scorer = RewardScorer.from_server("math")
        # sqrt(2)/2 against \\frac{{\\sqrt{{2}}}}{{2}}: not numeric, so math-verify decides, in a worker process
        print("REWARD", scorer.score("The answer is \\\\boxed{{\\\\frac{{\\\\sqrt{{2}}}}{{2}}}}", "\\\\sqrt{{2}}/2"))
    """))
    p = _python(script, tmp_path)
    assert p.returncode == 0, p.stderr
    assert runs.read_text() == "ran\n"  # the worker did not re-run the script
    assert p.stdout.count("REWARD") == 1 and "REWARD (1.0, " in p.stdout and "'method': 'math_verify'" in p.stdout
    assert p.stderr == ""  # no "can't register atexit after shutdown", no leaked semaphores


def test_code_that_leaves_a_process_holding_its_pipes_does_not_make_exit_noise(tmp_path: Path) -> None:
    script = tmp_path / "check.py"
    script.write_text(textwrap.dedent('''
        import asyncio
        from rollgen.records import Rollout, Task
        from rollgen.runtime import Runtime
        from rollgen.verifiers.code import CodeTests

        CODE = """```python
        import os, time
        if os.fork() == 0:  # leaves the process group and keeps the output pipes open after the test ends
            os.setsid()
            time.sleep(6)
            os._exit(0)
        def add(a, b):
            return a + b
        ```"""

        async def main():
            task = Task(id="t", prompt="q", metadata={"tests": ["assert add(1, 2) == 3"]})
            r = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=CODE, status="ok")
            async with Runtime() as rt:
                v = await rt.attach(CodeTests(CodeTests.Params(timeout_s=1)))
                print("REWARD", (await v.verify(task, r)).reward)

        asyncio.run(main())
    '''))
    p = _python(script, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "REWARD 1.0" in p.stdout
    assert "Exception ignored" not in p.stderr and "Event loop is closed" not in p.stderr, p.stderr


def test_worker_context_starts_processes_without_the_main_module(tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent("""
        import os
        from concurrent.futures import ProcessPoolExecutor
        from rollgen.workers import process_context
        print("MAIN", os.getpid())
        for method in ("spawn", "forkserver"):
            with ProcessPoolExecutor(1, mp_context=process_context(method)) as pool:
                print(method, pool.submit(os.getpid).result() != os.getpid())
    """))
    p = _python(script, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("MAIN") == 1 and "spawn True" in p.stdout and "forkserver True" in p.stdout
