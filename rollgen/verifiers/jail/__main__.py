"""The code sandbox's program: ``python -I -S <this directory> ISOLATION``, stdlib only.

It reads one job (``marshal``, from rollgen, with rollgen's pid) on stdin and writes frames (``jail_super``)
on stdout. Three processes, only the last of which ever runs the code:

* the launcher (this process) enters the namespaces (``jail_ns.isolate``), forks PID 1 and waits for it,
  killing it if the job overruns; it dies with rollgen (``PR_SET_PDEATHSIG``), and PID 1 dies with it;
* PID 1 builds the read-only root, then supervises each execution (``jail_super``); it never runs the
  code, installs no signal handlers (so nothing inside can signal it) and is not dumpable (nothing inside
  can ptrace it or read its memory or file descriptors);
* the confined child (``jail_confine``, then ``jail_harness``) runs the code.

With ``ISOLATION`` = ``rlimits`` (the opt-in weaker mode) there are no namespaces: the launcher supervises
from a temporary directory, the child leads its own process group, orphans reparent to the launcher.
"""

import marshal
import os
import signal
import site
import sys

import jail_confine
import jail_harness
import jail_libc as lc
import jail_ns
from jail_super import Supervisor, write_all

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
SETUP_FAILED, OVERRAN = 3, 4
_HERE = os.path.dirname(os.path.abspath(__file__))
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _fail(error: OSError) -> None:
    data = (error.strerror or str(error)).encode(errors="replace")
    write_all(1, b"E %d\n" % len(data) + data)
    os._exit(SETUP_FAILED)


def _confined(job: dict, workdir: str, namespaced: bool):
    """The child's body: confine, then run the code (never returns)."""
    def body(ok_fd: int) -> None:
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(_ENV, HOME=workdir, TMPDIR=workdir)
        sys.path[:] = [p for p in sys.path if p != _HERE]
        if not namespaced:
            lc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        lc.prctl(PR_SET_DUMPABLE, 1)  # its own /proc/self; PID 1 stays not dumpable, ptrace is filtered out
        try:
            jail_confine.drop_capabilities(required=namespaced)
            jail_confine.install_seccomp()
            jail_confine.apply_limits(job["memory"], job["cpu_s"], job["file_size"], job["files"],
                                      job["processes"] if namespaced else None)
        except (OSError, ValueError) as e:
            os.write(2, f"{getattr(e, 'strerror', None) or e}\n".encode())
            os._exit(71)
        os.write(ok_fd, b"1")
        os.close(ok_fd)
        path = os.path.join(workdir, "solution.py")
        if job["mode"] == "program":
            jail_harness.run_program(job["code"], path)
        jail_harness.run_probes(job["code"], job["tests"], job["load_timeout"], job["test_timeout"], 3)
    return body


def _run_job(job: dict, sup: Supervisor, workdir: str, namespaced: bool) -> None:
    child = _confined(job, workdir, namespaced)
    if job["mode"] == "program":
        for i, stdin in enumerate(job["inputs"]):
            if i and namespaced:
                jail_ns.fresh_tmp(job["tmp_mb"])
            sup.execute(child, stdin, job["timeout"], channel=False)
    else:
        sup.execute(child, None, job["timeout"], channel=True)
    write_all(1, b"D\n")


def _namespaced(job: dict) -> None:
    try:
        root = jail_ns.isolate()
    except OSError as e:
        _fail(e)
    death_r, death_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # PID 1 of the new namespaces
        os.close(death_w)
        lc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        lc.prctl(PR_SET_DUMPABLE, 0)
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            jail_ns.build_root(root, job["tmp_mb"])
        except OSError as e:
            _fail(e)
        _run_job(job, Supervisor(True, job["max_output"], death_r), "/tmp", True)
        os._exit(0)
    os.close(death_r)
    root.close()

    def overran(*_):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os._exit(OVERRAN)

    signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, job["deadline"])
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _plain(job: dict) -> None:
    import shutil  # noqa: PLC0415 - only this mode needs them; they cost the namespaced one start-up time
    import tempfile  # noqa: PLC0415

    lc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    workdir = tempfile.mkdtemp(prefix="rollgen-sandbox-")
    try:
        _run_job(job, Supervisor(False, job["max_output"]), workdir, False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    os._exit(0)


def _site_packages() -> None:
    """What ``site`` would add (we run ``-S``: its .pth processing is most of an interpreter's start-up):
    the virtual environment's site-packages (and the base's, when the venv includes them), else the base's."""
    exe_dir = os.path.dirname(os.path.abspath(sys.executable))
    prefixes = [sys.prefix]
    for cfg in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(os.path.dirname(exe_dir), "pyvenv.cfg")):
        if os.path.isfile(cfg):
            with open(cfg, encoding="utf-8") as f:
                system = any(ln.split("=")[0].strip() == "include-system-site-packages"
                             and ln.split("=", 1)[1].strip().lower() == "true" for ln in f if "=" in ln)
            sys.prefix = sys.exec_prefix = os.path.dirname(cfg)
            prefixes = [sys.prefix, sys.base_prefix] if system else [sys.prefix]
            break
    sys.path += [d for d in site.getsitepackages(prefixes) if os.path.isdir(d) and d not in sys.path]


def main() -> None:
    lc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _site_packages()
    job = marshal.loads(sys.stdin.buffer.read())
    if os.getppid() != job.pop("parent"):  # rollgen died before we set PDEATHSIG
        os._exit(OVERRAN)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    (_namespaced if sys.argv[1] == "namespaces" else _plain)(job)


main()
