"""The sandbox itself (``rollgen.verifiers.sandbox``): what the code sees and may do, as root and as an
unprivileged user, without user namespaces (fail closed, or the opt-in weaker mode), and teardown when
rollgen cancels or dies."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rollgen.verifiers import sandbox
from rollgen.verifiers.sandbox import JAIL, Limits, SandboxError, run_program
from tests.test_sandbox_hostile import processes_with, verify

ROOT = Path(__file__).resolve().parent.parent
LIMITS = Limits(timeout_s=5, max_processes=8)

INSPECT = r"""
import ctypes, json, os, resource, sys
libc = ctypes.CDLL(None, use_errno=True)
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
print(json.dumps({
    "uid": os.getuid(), "uid_map": open("/proc/self/uid_map").read().split(), "ppid": os.getppid(),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "cwd": os.getcwd(),
    "root": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc")), "env": sorted(os.environ),
    "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(), "seccomp": status["Seccomp"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "limits": {k: resource.getrlimit(getattr(resource, "RLIMIT_" + k))[0]
               for k in ("NPROC", "AS", "CPU", "FSIZE", "NOFILE", "CORE")},
    "unshare_user": libc.unshare(0x10000000) == -1 and ctypes.get_errno(),
    "ptrace_pid1": libc.ptrace(16, 1, 0, 0) == -1 and ctypes.get_errno(),
    "mount": libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == -1 and ctypes.get_errno(),
}))
"""


def inspect(limits: Limits = LIMITS) -> dict:
    (run,) = asyncio.run(run_program(INSPECT, [""], limits))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_code_sees_its_own_namespaces_and_nothing_else() -> None:
    seen = inspect()
    outside = 65534 if os.geteuid() == 0 else os.geteuid()
    assert seen["uid"] == 0 and seen["uid_map"] == ["0", str(outside), "1"]  # root inside is never root outside
    assert seen["ppid"] == 1 and seen["pids"] == [1, 2]  # PID 1 (the supervisor) and itself: rollgen is not there
    assert seen["cwd"] == "/tmp" and seen["etc"] == ["ld.so.cache"]
    assert not {"home", "root", "work"} & set(seen["root"]) - {p.split("/")[1] for p in (sys.prefix, sys.base_prefix)}
    assert seen["env"] == sorted(["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                  "MKL_NUM_THREADS", "PYTHONDONTWRITEBYTECODE"])


def test_the_code_has_no_capabilities_a_seccomp_filter_and_its_limits() -> None:
    seen = inspect()
    assert seen["cap_eff"] == seen["cap_bnd"] == "0000000000000000"
    assert seen["seccomp"] == "2" and seen["no_new_privs"] == "1"
    assert seen["unshare_user"] == seen["ptrace_pid1"] == seen["mount"] == 1  # EPERM
    assert seen["limits"] == {"NPROC": LIMITS.max_processes + 2,  # the launcher and PID 1 share the count
                              "AS": LIMITS.memory_mb << 20, "CPU": 6,  # the backstop 1 s past the 5 s wall clock
                              "FSIZE": LIMITS.file_size_mb << 20,
                              "NOFILE": LIMITS.max_files, "CORE": 0}


def test_file_size_and_tmp_size_are_capped_and_tmp_is_fresh_per_run() -> None:
    code = ("import os, sys\nname = sys.stdin.read().strip()\nprint(sorted(os.listdir('/tmp')))\n"
            "try:\n    open('/tmp/' + name, 'wb').write(b'x' * (3 << 20))\n    print('wrote')\n"
            "except OSError as e:\n    print(e.errno)\n")
    small = Limits(timeout_s=5, file_size_mb=2, tmp_mb=64)
    first, second = asyncio.run(run_program(code, ["a", "b"], small))
    assert first.stdout.split() == ["[]", "27"]  # EFBIG: RLIMIT_FSIZE
    assert second.stdout.split() == ["[]", "27"]  # the first run's partial file is gone
    (tiny,) = asyncio.run(run_program(code, ["c"], Limits(timeout_s=5, file_size_mb=16, tmp_mb=1)))
    assert tiny.stdout.split() == ["[]", "28"]  # ENOSPC: the tmpfs size


def run_as_nobody(script: str, python: str, where: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", script],
                          cwd=where, capture_output=True, text=True, timeout=120)


def test_an_unprivileged_user_gets_the_same_sandbox() -> None:
    """CI runs as root: run the sandbox as nobody too, from a copy it can read, with a Python it can run."""
    if os.geteuid() != 0:
        pytest.skip("not root: this whole suite already runs the sandbox unprivileged")
    where = Path(tempfile.mkdtemp(prefix="rollgen-test-"))
    try:
        shutil.copy(ROOT / "rollgen" / "verifiers" / "sandbox.py", where / "sandbox.py")
        shutil.copytree(JAIL, where / "jail", ignore=shutil.ignore_patterns("__pycache__"))
        for p in [where, *where.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))
        reexec = "import os, sys; os.execv(sys.executable, [sys.executable, '-c', 'pass'])"
        python = next((p for p in (sys.executable, "/usr/bin/python3")
                       if run_as_nobody(reexec, p, where).returncode == 0), None)
        assert python, "no Python that nobody may run: install python3 outside /root"
        script = ("import asyncio, json, sandbox\n"
                  f"code = {INSPECT!r}\n"
                  "(run,) = asyncio.run(sandbox.run_program(code, [''], sandbox.Limits(timeout_s=5, max_processes=8)))\n"
                  "print(run.stdout)")
        p = run_as_nobody(script, python, where)
        assert p.returncode == 0, p.stderr
        seen = json.loads(p.stdout)
        assert seen["uid"] == 0 and seen["uid_map"] == ["0", "65534", "1"] and seen["pids"] == [1, 2]
        assert seen["cap_eff"] == "0000000000000000" and seen["seccomp"] == "2" and seen["etc"] == ["ld.so.cache"]
    finally:
        shutil.rmtree(where)


def without_user_namespaces(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` where creating a user namespace fails, as where they are disabled (here: a user namespace
    whose ``user.max_user_namespaces`` is 0)."""
    assert shutil.which("unshare"), "util-linux unshare is needed to test a machine without user namespaces"
    shell = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" -c "$1"'
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", shell, sys.executable, script],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def test_without_user_namespaces_it_fails_closed_saying_how_to_enable_them() -> None:
    script = ("import asyncio\nfrom rollgen.verifiers.sandbox import Limits, SandboxError, run_program\n"
              "try:\n    asyncio.run(run_program('print(1)', [''], Limits()))\nexcept SandboxError as e:\n"
              "    print(e)\nelse:\n    print('ran without namespaces')")
    p = without_user_namespaces(script)
    assert p.returncode == 0, p.stderr
    assert "unshare(CLONE_NEWUSER" in p.stdout and "No space left on device" in p.stdout
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in p.stdout and "isolation: rlimits" in p.stdout


def test_the_weaker_mode_is_opt_in_and_still_judges_outside() -> None:
    script = ("import asyncio\nfrom tests.test_sandbox_hostile import verify, HONEST\n"
              "print(verify(HONEST, isolation='rlimits')[0].reward)\n"
              "forged = 'import os\\nos.write(3, repr((\"fire\", 0, 0, [\"3\"], None)).encode())\\nos._exit(0)'\n"
              "v = verify(forged, isolation='rlimits')[0]\nprint(v.reward, v.details['isolation'])")
    p = without_user_namespaces(script)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1.0", "0.0", "rlimits"]


def test_the_weaker_mode_kills_daemons_and_removes_its_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 99991}"
    code = ("import os\ndef add(a, b):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
            f"            os.execv('/bin/sleep', ['sleep', '{marker}'])\n        os._exit(0)\n    return a + b\n"
            "def where():\n    return os.getcwd()")
    v, _ = verify(code, tests=["assert add(1, 2) == 3", "assert where() == ''"], isolation="rlimits")
    assert v.reward == 0.5 and v.details["isolation"] == "rlimits"
    assert f"where() = '{tmp_path}/rollgen-sandbox-" in v.details["results"][1]["error"]
    assert processes_with(marker) == []
    assert list(tmp_path.iterdir()) == []  # its working directory was made here, and removed


def until(condition: Callable[[], bool], within_s: float = 30.0) -> bool:
    """Poll ``condition`` (a teardown that finishes in the kernel, not in this process) until true or timeout."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_cancelled_verification_takes_its_sandbox_down() -> None:
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 99989}"
    code = f"import os\nos.execv('/bin/sleep', ['sleep', '{marker}'])"

    async def main() -> None:
        task = asyncio.create_task(run_program(code, [""], Limits(timeout_s=60)))
        while not processes_with(marker):
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert until(lambda: not processes_with(marker) and not processes_with(str(JAIL)))


def test_when_rollgen_is_killed_its_sandboxes_die_too() -> None:
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 99971}"
    script = (f"import asyncio\nfrom tests.test_sandbox_hostile import verify\n"
              f"verify('import os\\nos.execv(\"/bin/sleep\", [\"sleep\", \"{marker}\"])', timeout_s=120)")
    rollgen = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert until(lambda: bool(processes_with(marker)) or rollgen.poll() is not None)
        assert rollgen.poll() is None
        os.kill(rollgen.pid, signal.SIGKILL)
    finally:
        rollgen.wait()
    assert until(lambda: not processes_with(marker) and not processes_with(str(JAIL)))


def test_a_python_under_tmp_is_refused_clearly() -> None:
    """The private /tmp would hide it: every import the code makes would fail, so refuse to run at all."""
    where = Path(tempfile.mkdtemp(dir="/tmp", prefix="rollgen-test-"))
    try:
        (where / "python").symlink_to(sys.executable)
        (where / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\n")  # a venv living in /tmp
        with pytest.raises(SandboxError, match="would be hidden by the sandbox's private /tmp"):
            asyncio.run(run_program("print(1)", [""], LIMITS, python=str(where / "python")))
    finally:
        shutil.rmtree(where)


def test_a_child_that_cannot_be_confined_never_runs_the_code() -> None:
    """Confinement that fails (here: more open files than the hard limit, once capabilities are gone) is the
    sandbox's failure, a verifier error, never a 0 for the code: the child says "confined" before it runs it."""
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 99961}"
    code = f"import os\nos.execv('/bin/sleep', ['sleep', '{marker}'])"
    with pytest.raises(SandboxError, match="could not confine the code: not allowed to raise maximum limit"):
        asyncio.run(run_program(code, [""], Limits(timeout_s=5, max_files=1 << 30)))
    assert processes_with(marker) == []


def test_a_missing_interpreter_is_a_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="cannot start the sandbox"):
        asyncio.run(run_program("print(1)", [""], LIMITS, python="/nonexistent/python"))


def test_public_names() -> None:
    import importlib

    for name in ("rollgen.verifiers.sandbox", "rollgen.verifiers.probes", "rollgen.verifiers.plain"):
        module = importlib.import_module(name)
        assert module.__all__ and all(hasattr(module, n) for n in module.__all__), name
    assert set(sandbox.__all__) >= {"Limits", "SandboxError", "run_program", "run_probes", "Execution"}
