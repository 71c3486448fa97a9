"""Run a model's code in the sandbox and read back what it produced; the verdict is rollgen's, outside.

The code runs in ``rollgen/verifiers/jail`` (a stdlib-only program started as ``python -I -S``):

* namespaces: its own user (uid 0 inside is the caller outside, or nobody when rollgen runs as root), PID
  (it sees only its own processes; rollgen has no PID there), mount, network (no interface up), IPC, UTS and
  cgroup namespaces;
* files: a read-only root holding only the system libraries and the Python installation, a fresh
  size-capped tmpfs ``/tmp`` as its working directory and ``HOME``, no ``/etc`` (but ``ld.so.cache``),
  no home directories, no rollgen checkout, and a ``/proc`` that shows the sandbox's processes only;
* privileges: every capability dropped, ``no_new_privs``, and a seccomp filter against the calls that
  attack the kernel or undo the jail (``jail/jail_confine.py`` says which, and why seccomp, not Landlock);
* limits: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, ``RLIMIT_NPROC``
  (processes and threads; counted per user namespace since Linux 5.14, i.e. per sandbox), a wall clock per
  execution, and caps on stdout, stderr and the probe channel (hitting one kills the execution);
* environment: only ``PATH``, ``HOME``/``TMPDIR`` (its /tmp), ``LANG`` and one BLAS thread;
* lifetime: when an execution ends (or times out) PID 1 kills every process in the namespace and waits
  for them, so daemons (``setsid``, double fork) die with it; if rollgen dies, the launcher and then the
  namespace die with it (``PR_SET_PDEATHSIG``).

The code's outputs come back as bytes (stdout per input) or as plain values (``run_probes``), and the
caller compares them with expected values the code never receives.

Without user namespaces (``sysctl``-disabled, or a container's seccomp profile) the sandbox refuses to run
and says how to enable them; ``isolation="rlimits"`` opts into a weaker mode without namespaces: the same
limits, capabilities, seccomp filter and out-of-sandbox verdict, in a temporary directory, as a child that
can see and signal rollgen's processes, read what rollgen can read and use the network.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ENABLE_NAMESPACES", "Execution", "Isolation", "Limits", "SandboxError", "run_probes", "run_program"]

Isolation = Literal["namespaces", "rlimits"]
JAIL = Path(__file__).resolve().parent / "jail"
_CHANNEL_CAP = 4 << 20  # jail_super.CHANNEL_CAP
_SETUP_FAILED, _OVERRAN = 3, 4
_STARTUP_S = 10.0  # on top of the executions' own time: interpreter start and namespace setup under load
ENABLE_NAMESPACES = (
    "rollgen runs model code in its own user, PID, mount and network namespaces, and this machine does not "
    "let it create them ({error}). Enable unprivileged user namespaces: `sysctl -w "
    "kernel.unprivileged_userns_clone=1` (Debian, older Ubuntu), `sysctl -w user.max_user_namespaces=15000` "
    "(RHEL, CentOS), `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 23.10+); in Docker, "
    "run with `--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (the default profiles "
    "block unshare). Or opt into the weaker mode without namespaces with `isolation: rlimits` in the code "
    "verifier's config (verifier.isolation=rlimits): the code can then see and signal rollgen's processes, "
    "read the files rollgen can read and use the network.")


class SandboxError(RuntimeError):
    """The sandbox itself could not run (not the code under test failing): a verifier error."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_files: int = 64
    max_output_bytes: int = 1 << 20
    max_processes: int = 32
    tmp_mb: int = 64
    isolation: Isolation = "namespaces"

    def job(self) -> dict:
        return {"memory": self.memory_mb << 20, "cpu_s": int(self.timeout_s + 0.999) + 1,
                "file_size": self.file_size_mb << 20, "files": self.max_files, "processes": self.max_processes + 2,
                "max_output": self.max_output_bytes, "tmp_mb": self.tmp_mb, "timeout": self.timeout_s}


@dataclass(frozen=True)
class Execution:
    """One run of the code. ``returncode`` is negative for a signal; ``stderr`` is its last 8 KiB."""

    returncode: int
    stdout: str
    stderr: str
    channel: str
    timed_out: bool
    output_exceeded: bool
    duration_s: float


async def run_program(code: str, inputs: list[str], limits: Limits, python: str | None = None) -> list[Execution]:
    """Run ``code`` as a program once per input (its stdin), each in a fresh process and /tmp."""
    job = {**limits.job(), "mode": "program", "code": code, "inputs": [s.encode() for s in inputs]}
    return await _run(job, limits, len(inputs), python)


async def run_probes(code: str, tests: list[str], limits: Limits, test_timeout_s: float,
                     python: str | None = None) -> Execution:
    """Load ``code`` as module ``solution`` and run each rewritten test program (``rollgen.verifiers.probes``)
    in one process; the fired values are in ``channel``."""
    job = {**limits.job(), "mode": "probes", "code": code, "tests": tests, "load_timeout": test_timeout_s,
           "test_timeout": test_timeout_s}
    return (await _run(job, limits, 1, python))[0]


async def _run(job: dict, limits: Limits, executions: int, python: str | None) -> list[Execution]:
    job.update(deadline=executions * limits.timeout_s + _STARTUP_S, parent=os.getpid())
    cap = executions * (2 * limits.max_output_bytes + _CHANNEL_CAP + 256) + 4096
    try:
        proc = await asyncio.create_subprocess_exec(
            python or sys.executable, "-I", "-S", str(JAIL), limits.isolation,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.defpath, "LANG": "C.UTF-8", "TMPDIR": tempfile.gettempdir()}, start_new_session=True)
    except OSError as e:
        raise SandboxError(f"cannot start the sandbox: {e}") from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(marshal.dumps(job))
        await proc.stdin.drain()
        proc.stdin.close()
        out, err, _ = await asyncio.wait_for(
            asyncio.gather(_read(proc.stdout, cap), _read(proc.stderr, 65536), proc.wait()), job["deadline"] + 10)
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        out, err = b"", b""
    finally:
        if proc.returncode is None:  # overran, or the verify was cancelled: PID 1 dies with the launcher
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await asyncio.shield(proc.wait())
    return _parse(out, err, proc.returncode, executions)


async def _read(stream: asyncio.StreamReader, cap: int) -> bytes:
    buf = bytearray()
    while chunk := await stream.read(1 << 16):
        if len(buf) < cap:
            buf += chunk[: cap - len(buf)]
    return bytes(buf)


def _parse(out: bytes, err: bytes, returncode: int | None, executions: int) -> list[Execution]:
    runs: list[Execution] = []
    pos, done = 0, False
    while pos < len(out):
        nl = out.find(b"\n", pos)
        if nl < 0:
            break
        head = out[pos:nl].decode(errors="replace").split()
        pos = nl + 1
        if head[:1] == ["E"]:
            message = out[pos:pos + int(head[1])].decode(errors="replace")
            if message.startswith("unshare("):
                raise SandboxError(ENABLE_NAMESPACES.format(error=message))
            raise SandboxError(f"the code sandbox could not be set up: {message}")
        if head[:1] == ["D"]:
            done = True
            break
        rc, flags, seconds, *sizes = head[1:]
        parts = []
        for size in map(int, sizes):
            parts.append(out[pos:pos + size].decode(errors="replace"))
            pos += size
        if "c" in flags:
            raise SandboxError(f"the code sandbox could not confine the code: {parts[1].strip()[-500:]}")
        # SIGXCPU: the CPU-time backstop fired before the wall clock (threads, or a busy machine's start-up)
        timed_out = "t" in flags or int(rc) == -signal.SIGXCPU
        runs.append(Execution(int(rc), parts[0], parts[1], parts[2], timed_out, "o" in flags, float(seconds)))
    if not done and returncode != _OVERRAN:
        detail = err.decode(errors="replace").strip()[-500:] or f"exit code {returncode}"
        raise SandboxError(f"the code sandbox ended unexpectedly: {detail}")
    while len(runs) < executions:  # overran as a whole: the rest never ran
        runs.append(Execution(-signal.SIGKILL, "", "", "", True, False, 0.0))
    return runs
