"""Hostile code against the code verifier's sandbox: each attempt is contained, scores 0, leaves rollgen (this
process, its event loop, a sibling verification) unharmed, and leaves no process or file behind.

Most attempts report what they achieved as the value the test probes, so the failure message shows it:
``add(1, 2) = 'blocked: [Errno 101] Network is unreachable'``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers.code import CodeTests
from rollgen.verifiers.sandbox import JAIL
from tests.conftest import started

TIMEOUT_S = 4.0
SLACK_S = 20.0  # interpreter start-up and teardown on two busy cores
ADD = ["assert add(1, 2) == 3", "assert add(20, 22) == 42"]
HONEST = "def add(a, b):\n    return a + b"


def verifier(**params: Any) -> CodeTests:
    return CodeTests(CodeTests.Params.model_validate(
        {"timeout_s": TIMEOUT_S, "test_timeout_s": 2, "max_processes": 16, "memory_mb": 512, **params}))


async def averify(code: str, tests: Any = None, v: CodeTests | None = None, *, started_by_caller: bool = False
                  ) -> Verdict:
    """``code`` scored by ``v`` (a fresh verifier when None), started on a runtime of its own unless the caller
    started it."""
    task = Task(id="t", prompt="write add", metadata={"tests": ADD if tests is None else tests})
    rollout = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=f"```python\n{code}\n```", status="ok")
    v = v or verifier()
    if started_by_caller:
        return await v.verify(task, rollout)
    async with started(v):
        return await v.verify(task, rollout)


def verify(code: str, tests: Any = None, **params: Any) -> tuple[Verdict, float]:
    t0 = time.perf_counter()
    verdict = asyncio.run(averify(code, tests, verifier(**params)))
    return verdict, time.perf_counter() - t0


def errors(v: Verdict) -> str:
    return " | ".join(r.get("error", "") for r in v.details["results"])


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """After each attempt: no sandbox process, no child of ours, nothing in the temporary directory."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    before = set(psutil.Process().children(recursive=True))  # e.g. a model server another module started
    yield
    assert processes_with(str(JAIL)) == []
    assert list(tmp.iterdir()) == []
    assert set(psutil.Process().children(recursive=True)) <= before


def test_infinite_loop_is_killed_at_the_wall_clock() -> None:
    code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
    v, took = verify(code)
    assert v.reward == 0.0 and v.details["timed_out"] is True and took < TIMEOUT_S + SLACK_S
    io, took = verify("while True:\n    pass", tests=[{"input": "", "output": "1"}])
    assert io.reward == 0.0 and "timed out" in errors(io) and took < TIMEOUT_S + SLACK_S


def test_the_cpu_time_backstop_is_reported_as_a_timeout() -> None:
    # RLIMIT_CPU is the backstop behind the wall clock; whichever fires first, the code ran out of time.
    xcpu = "import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)"
    v, _ = verify(xcpu)
    assert v.reward == 0.0 and v.details["timed_out"] is True and "timed out" in errors(v)
    io, _ = verify(xcpu, tests=[{"input": "", "output": "1"}])
    assert io.reward == 0.0 and io.details["timed_out"] is True and "timed out" in errors(io)


def test_fork_bomb_is_capped_and_killed() -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    v, took = verify(bomb)
    assert v.reward == 0.0 and took < TIMEOUT_S + SLACK_S
    spawn = ("import os\ndef add(a, b):\n    n = 0\n    for _ in range(1000):\n        try:\n"
              "            pid = os.fork()\n        except OSError:\n            break\n        if pid == 0:\n"
             "            __import__('time').sleep(60)\n            os._exit(0)\n        n += 1\n    return n")
    capped, _ = verify(spawn, tests=["assert add(1, 2) == 1000"])
    made = int(re.search(r"add\(1, 2\) = (\d+)", errors(capped)).group(1))  # type: ignore[union-attr]
    assert capped.reward == 0.0 and 0 < made < 16  # max_processes: 16, the code itself included
    assert verify(HONEST)[0].reward == 1.0  # rollgen still forks fine


def test_8_gb_allocation_is_a_memory_error() -> None:
    v, _ = verify("blob = bytearray(8 * 1024 ** 3)\n" + HONEST)
    assert v.reward == 0.0 and "MemoryError" in errors(v)
    pages = ("import mmap\ndef add(a, b):\n    m = mmap.mmap(-1, 8 * 1024 ** 3)\n    m[::4096] = b'x' * (2 * 1024 ** 2)\n"
             "    return a + b")
    v, _ = verify(pages)
    assert v.reward == 0.0 and ("MemoryError" in errors(v) or "OSError" in errors(v)), errors(v)


def test_network_connect_is_blocked() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = ("import socket\ndef add(a, b):\n    out = []\n"
                f"    for host in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('::1', {port})]:\n        try:\n"
                "            socket.create_connection(host, timeout=1).close()\n            out.append('connected')\n"
                "        except OSError as e:\n            out.append('blocked')\n    return out")
        v, _ = verify(code, tests=["assert add(1, 2) == 3"])
        assert v.reward == 0.0 and "['blocked', 'blocked', 'blocked']" in errors(v), errors(v)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever reached this host's loopback


def test_writes_outside_the_private_tmp_fail(tmp_path: Path) -> None:
    targets = [tmp_path / "marker", Path("/tmp") / f"rollgen-hostile-{os.getpid()}",
               JAIL / "marker", Path.cwd() / "marker", Path("/etc/marker"), Path("/marker")]
    code = ("import os, sys\ndef add(a, b):\n    wrote = []\n"
            f"    for p in {[str(t) for t in targets]!r} + [sys.prefix + '/marker', os.path.expanduser('~/../marker')]:\n"
            "        try:\n            with open(p, 'w') as f:\n                f.write('x')\n            wrote.append(p)\n"
            "        except OSError:\n            pass\n    return wrote")
    v, _ = verify(code)
    assert v.reward == 0.0
    for t in targets:
        assert not t.exists(), t
    # only its own /tmp (a tmpfs that went away with it) took writes
    wrote = json.loads(re.search(r"add\(1, 2\) = (\[.*?\])", errors(v)).group(1).replace("'", '"'))  # type: ignore[union-attr]
    assert all(p.startswith("/tmp/") for p in wrote), wrote


def reads(paths: str) -> str:
    """Code whose ``add`` reads each of ``paths`` (a Python expression) and returns what it got."""
    return ("import os\ndef add(a, b):\n    got = {}\n"
            f"    for p in {paths}:\n        try:\n            got[p] = open(p, 'rb').read().decode(errors='replace')\n"
            "        except OSError as e:\n            got[p] = type(e).__name__\n    return got")


def test_secrets_in_rollgens_environment_do_not_reach_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hostile-test-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_hostile_test_secret")
    v, _ = verify(reads("['/proc/self/environ', '/proc/1/environ', f'/proc/{os.getppid()}/environ']"))
    dumped = json.dumps(v.details)
    assert v.reward == 0.0 and "PermissionError" in dumped
    assert "hostile-test-secret" not in dumped and "hostile_test_secret" not in dumped


def test_host_files_are_not_there_to_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the-host-secret")
    v, _ = verify(reads(repr(["/etc/passwd", "/etc/shadow", "/etc/hostname", "/root/.bashrc", str(secret)])))
    dumped = json.dumps(v.details)
    assert v.reward == 0.0 and "FileNotFoundError" in dumped
    assert "root:x:0:0" not in dumped and "the-host-secret" not in dumped


def test_killing_the_parent_or_everything_reaches_nothing_outside() -> None:
    code = (f"import os, signal\ndef add(a, b):\n    out = []\n"
            f"    for pid in [os.getppid(), 1, {os.getpid()}, {os.getppid()}]:\n        try:\n"
            "            os.kill(pid, signal.SIGKILL)\n            out.append('sent')\n"
            "        except OSError as e:\n            out.append(type(e).__name__)\n"
            "    os.kill(-1, signal.SIGKILL)\n    os.killpg(0, signal.SIGKILL)\n    return out")

    async def both() -> tuple[Verdict, Verdict]:
        v = verifier()
        async with started(v):
            return await asyncio.gather(averify(code, v=v, started_by_caller=True),
                                        averify(HONEST, v=v, started_by_caller=True))

    hostile, honest = asyncio.run(both())
    assert hostile.reward == 0.0 and honest.reward == 1.0  # the sibling sandbox and this process survived
    for _ in range(3):  # and every later run works
        assert verify(HONEST)[0].reward == 1.0
    io, _ = verify("import os\ntry:\n    os.kill(os.getppid(), 9)\n    os.kill(-1, 9)\nexcept OSError:\n    pass\nprint(3)",
                   tests=[{"input": "", "output": "3"}])
    assert io.reward == 1.0  # its parent is the sandbox's PID 1, which ignores it; the answer is right


def test_a_daemon_dies_with_the_run() -> None:
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 100000}"
    code = ("import os\ndef add(a, b):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
            f"            os.execv('/bin/sleep', ['sleep', '{marker}'])\n        os._exit(0)\n    return 0")
    v, took = verify(code)
    assert v.reward == 0.0 and took < TIMEOUT_S + SLACK_S
    assert processes_with(marker) == []


def test_a_gigabyte_of_output_is_cut_off() -> None:
    flood = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    io, took = verify(flood, tests=[{"input": "", "output": "x"}])
    assert io.reward == 0.0 and "output limit exceeded" in errors(io) and took < TIMEOUT_S + SLACK_S
    v, took = verify(flood.replace("stdout", "stderr") + HONEST)
    assert v.reward == 0.0 and "output limit exceeded" in errors(v) and took < TIMEOUT_S + SLACK_S
    fd3 = "import os\nwhile True:\n    os.write(3, b'x' * 65536)\n"
    v, took = verify(fd3)
    assert v.reward == 0.0 and took < TIMEOUT_S + SLACK_S


@pytest.mark.parametrize("code", [
    # result lines on stdout, in the old and the new shapes
    "for i in range(10):\n    print([i, True, None])\n    print(('fire', i, 0, ['3'], None), ('end', i, None))\n"
    "def add(a, b):\n    return 0",
    # frames straight to every descriptor, then exit before any test runs
    "import os\nfor fd in range(20):\n    for i in range(2):\n        try:\n"
    "            os.write(fd, repr(('fire', i, 0, ['True'], None)).encode() + b'\\n' + repr(('end', i, None)).encode() + b'\\n')\n"
    "        except OSError:\n            pass\nos._exit(0)",
    # leave during loading with success
    "import sys\nsys.exit(0)",
    # an object equal to everything
    "class E:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\ndef add(a, b):\n    return E()",
    # rewrite the harness so every value reads as the expected one it hopes for
    "import sys\nh = sys.modules.get('jail_harness')\nif h:\n    h.encode = lambda v, d=0: 'True'\n"
    "def add(a, b):\n    return 0",
    # look for the expected values anywhere in its memory and return them
    "import gc\ndef add(a, b):\n    for o in gc.get_objects():\n        if isinstance(o, str) and 'zebra' in o:\n"
    "            return o\n    return 'not found'",
])
def test_forged_results_score_zero(code: str) -> None:
    v, _ = verify(code, tests=["assert add(1, 2) == 'zebra-7731'", "assert add(2, 2) == 'zebra-0042'"])
    assert v.reward == 0.0, v.details["results"]


def test_the_event_loop_keeps_running_during_a_hostile_run() -> None:
    async def main() -> float:
        gaps, last = [], time.perf_counter()

        async def tick() -> None:
            nonlocal last
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        flood = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"
        await asyncio.gather(averify("while True:\n    pass"), averify(flood, tests=[{"input": "", "output": "x"}]))
        ticker.cancel()
        return max(gaps)

    assert asyncio.run(main()) < 1.5
