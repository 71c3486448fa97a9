"""The run directory (DESIGN.md, "Run directory"): its file names, its lock, whether it can be made.

The JSONL reader and writers every stage uses live in ``rollgen.jsonl``; they are importable from here too.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

from rollgen.config import RunConfig
from rollgen.errors import UserError
from rollgen.jsonl import JsonlWriter, atomic_file, read_jsonl, write_json, write_jsonl

__all__ = ["JsonlWriter", "RunDir", "RunDirBusy", "RunDirLock", "RunDirUnlockable", "atomic_file", "cannot_create",
           "read_jsonl", "saved_config", "write_json", "write_jsonl"]

LOCK_NAME = ".rollgen.lock"  # "PID HOST" of the process that has the run dir; removed when it lets go


class RunDir:
    """Names of the files of one run; creates nothing until asked."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    config = property(lambda self: self.root / "run_config.json")
    tasks = property(lambda self: self.root / "tasks.jsonl")
    rollouts = property(lambda self: self.root / "rollouts.jsonl")
    curated = property(lambda self: self.root / "curated.jsonl")
    rejected = property(lambda self: self.root / "rejected.jsonl")
    dataset = property(lambda self: self.root / "dataset")
    export = property(lambda self: self.root / "export")
    report_json = property(lambda self: self.root / "report.json")
    report_md = property(lambda self: self.root / "report.md")

    def mkdir(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def remove_temp_files(self) -> int:
        """Delete temp files an interrupted stage left (only call while holding the run dir's lock)."""
        n = 0
        for pattern in ("*.tmp", "*.restore", "*.rescore"):
            for path in self.root.rglob(pattern):
                if path.is_file():
                    path.unlink(missing_ok=True)
                    n += 1
        return n


def saved_config(cfg: RunConfig) -> dict[str, Any]:
    """What ``run_config.json`` holds for ``cfg``: the rollgen version and the config, registered secrets masked.
    Later stages take the run's config in this form (the dataset card, the export's reward) from here."""
    from rollgen import redact
    from rollgen.version import __version__

    return redact.redact_obj({"rollgen_version": __version__, **cfg.model_dump(mode="json", by_alias=True)})


def cannot_create(path: str | os.PathLike[str]) -> str | None:
    """Why directory ``path`` cannot be created (None: it can, or exists). Leaves nothing behind: the
    directories made to find out are removed again."""
    p = Path(path).absolute()
    missing = [q for q in (p, *p.parents) if not q.exists()]
    made: list[Path] = []
    try:
        for q in reversed(missing):
            try:
                q.mkdir()
            except FileExistsError:
                if q.is_dir():
                    continue  # another process (a second rollgen on the same run dir) made it meanwhile
                raise
            made.append(q)
    except OSError as e:
        return e.strerror or str(e)
    finally:
        for q in reversed(made):
            try:
                q.rmdir()
            except OSError:
                pass  # another process put something there meanwhile: it is theirs now
    if missing:
        return None
    if not p.is_dir():
        return "not a directory"
    if not os.access(p, os.W_OK | os.X_OK):
        return "permission denied"
    return None


class RunDirBusy(UserError):
    """Another process holds the run dir."""


class RunDirUnlockable(RunDirBusy):
    """The run dir cannot be locked: no write access, or a file system without locks. A ``RunDirBusy``, so
    whatever handles a busy run dir (a clear one-line error, exit 2) handles this too."""


class RunDirLock:
    """A run dir belongs to one process at a time: an exclusive ``flock`` on ``.rollgen.lock`` inside it.

    ``acquire`` never waits: when another process holds the directory it raises ``RunDirBusy`` naming that
    process (it writes its pid and host name into ``.rollgen.lock`` once it holds the lock). The kernel drops the lock when
    its holder dies, even by ``kill -9``; a stale ``.rollgen.lock`` left then is simply taken over.

    The lock is on a regular file opened for writing, not on the directory: NFS clients lock through the
    server (Linux sends ``flock`` as a whole-file POSIX lock: NLM on NFSv3, the protocol's own locks on
    NFSv4), and an NFSv4 client refuses to lock a directory (``ENOLCK``: it holds no open state for one) or,
    exclusively, a file opened read-only (``EBADF``). The holder removes the file before it unlocks, so a
    process that locked the removed file sees that the path no longer names it and locks the new one.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Lock ``root`` (which must exist); raise ``RunDirBusy`` if another process has it."""
        if self._fd is not None:
            return
        path = self.root / LOCK_NAME
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as e:
                raise RunDirUnlockable(f"output_dir: cannot write to {self.root} ({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunDirBusy(f"{self.root} is in use by another rollgen process ({self._holder()}); wait for "
                                 "it to finish, or give this run its own directory (hydra.run.dir=...)") from None
            except OSError as e:  # ENOLCK, ENOSYS: a file system without (cluster-wide) locks
                os.close(fd)
                raise RunDirUnlockable(f"output_dir: cannot lock {path} ({e.strerror or e}); use a file system that supports "
                                "flock (docs/scale.md)") from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed the file (or the run dir) as we locked it: lock the new one
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._fd is None:
            return
        path = self.root / LOCK_NAME
        try:  # before unlocking (see acquire), and only the file this lock holds
            if os.path.samestat(os.fstat(self._fd), os.stat(path)):
                path.unlink()
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _holder(self) -> str:
        """``pid N`` of the holder (``pid N on HOST`` when it runs on another machine, as on shared storage); it
        writes them just after locking, so wait a moment for them."""
        deadline = time.monotonic() + 2.0
        while True:
            try:
                pid, _, host = (self.root / LOCK_NAME).read_text(encoding="utf-8").strip().partition(" ")
            except OSError:
                pid = host = ""
            if pid.isdigit():
                return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
            if time.monotonic() > deadline:
                return "pid unknown"
            time.sleep(0.01)
