"""Shared fixtures: a fake OpenAI server on 127.0.0.1 (in a thread, so sync code can call it) and task files."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, ClassVar

import blockbuster
import blockbuster.blockbuster
import pytest
from pydantic import BaseModel

from rollgen.records import Rollout, Task, Verdict
from rollgen.runtime import Runtime
from rollgen.servers import ResourceServer
from tests.fakes import FakeOpenAI, RunningFake


@asynccontextmanager
async def started(*components: Any, **runtime: Any) -> AsyncIterator[Runtime]:
    """``components`` started on a fresh ``Runtime(**runtime)``, closed with it at the end of the block."""
    async with Runtime(**runtime) as rt:
        for component in components:
            await rt.attach(component)
        yield rt


class BareServer(ResourceServer):
    """A resource server with no tasks and no tools, for tests that drive the rollout unit or ``collect`` directly."""

    class Params(BaseModel):
        pass

    def __init__(self) -> None:
        super().__init__(self.Params())

    def tasks(self, skipped: list[str] | None = None) -> Iterator[Task]:
        return iter(())


def verify_once(verifier: Any, task: Task, rollout: Rollout) -> Verdict:
    """``verifier.verify(task, rollout)`` in an event loop of its own, the verifier started on a runtime."""
    async def go() -> Verdict:
        async with started(verifier):
            return await verifier.verify(task, rollout)

    return asyncio.run(go())


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


class _Blocked(blockbuster.BlockingError):
    """blockbuster's error, also noted: a verifier's catch-all may turn it into a row, the test still fails."""

    seen: ClassVar[list[str]] = []

    def __init__(self, func: str) -> None:
        super().__init__(func)
        frames = [f for f in traceback.extract_stack()[:-1] if f"{os.sep}rollgen{os.sep}" in f.filename]
        where = f" from {frames[-1].filename}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
        self.seen.append(f"{func}{where}")


@pytest.fixture(autouse=True)
def no_blocking_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test when rollgen's code blocks a running event loop: file I/O, ``time.sleep``, a waiting lock,
    a blocking socket or pipe (blockbuster, in every thread that runs a loop: the run's, a reward scorer's).
    Only calls with rollgen's code on the stack count; the fakes' servers and the tests' own code do not."""
    monkeypatch.setattr(blockbuster.blockbuster, "BlockingError", _Blocked)
    _Blocked.seen = []
    with blockbuster.blockbuster_ctx(["rollgen"]):
        yield
    if _Blocked.seen:
        pytest.fail("blocking calls on the event loop: " + "; ".join(dict.fromkeys(_Blocked.seen)), pytrace=False)
