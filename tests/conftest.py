"""Shared fixtures: a fake OpenAI server on 127.0.0.1 (in a thread, so sync code can call it) and task files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes import FakeOpenAI, RunningFake


@contextmanager
def serve_in_thread(fake: FakeOpenAI) -> Iterator[str]:
    """Serve ``fake`` from its own event loop in a daemon thread; yield its base URL."""
    loop = asyncio.new_event_loop()
    running = RunningFake(fake)
    ready = threading.Event()
    url: list[str] = []

    def target() -> None:
        asyncio.set_event_loop(loop)
        url.append(loop.run_until_complete(running.__aenter__()))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(running.__aexit__(None, None, None))
        loop.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(10), "fake server did not start"
    try:
        yield url[0]
    finally:
        fake.release()  # requests held by ``hold_after`` finish, so the server's cleanup need not wait for them
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def wait_for_lines(proc: subprocess.Popen, path: Path, n: int, timeout_s: float = 120) -> None:
    """Poll until ``path`` holds ``n`` complete lines; fail if ``proc`` exits first or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and path.read_bytes().count(b"\n") >= n):
        assert proc.poll() is None, f"exited with {proc.returncode} before {path} had {n} lines"
        assert time.monotonic() < deadline, f"{path} did not reach {n} lines in {timeout_s:g}s"
        time.sleep(0.01)  # polling a condition, with a deadline


def write_arith_tasks(path: Path, n: int) -> Path:
    """``n`` arithmetic tasks the fake can solve, as question/answer rows."""
    with open(path, "w") as f:
        for i in range(n):
            a, b = i % 17 + 1, i % 5 + 2
            f.write(json.dumps({"id": f"t{i}", "question": f"Calculate {a} + {b}.", "answer": str(a + b)}) + "\n")
    return path


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    return write_arith_tasks(tmp_path / "tasks.jsonl", 12)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache (tasks and the rollout index), so no test reuses another's rollouts."""
    d = tmp_path / "cache"
    monkeypatch.setenv("ROLLGEN_CACHE_DIR", str(d))
    return d
