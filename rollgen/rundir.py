"""The run directory (DESIGN.md, "Run directory") and the JSONL I/O every stage uses.

Files are replaced atomically through a temp file with a unique name beside them (never a fixed
``name.tmp`` two processes could share), removed again if writing fails.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rollgen.errors import UserError

__all__ = ["JsonlWriter", "RunDir", "RunDirBusy", "RunDirLock", "RunDirUnlockable", "atomic_file", "cannot_create",
           "read_jsonl", "write_json", "write_jsonl"]

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


class JsonlWriter:
    """Appends lines from the event loop without blocking it: a thread writes and flushes each batch.

    ``write`` only appends to a list; once per event-loop iteration the lines written during that
    iteration are handed to the thread as one batch (one queue operation, not one per line, which
    would wake the thread and contend for the GIL each time). The thread writes each batch of whole
    lines with one ``write`` and flushes, so every line on disk is complete and a crash loses at most
    the batch in hand.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the thread
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._pending: list[str] = []
        self._thread = threading.Thread(target=self._run, name=f"writer:{self.path.name}", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        if self._error is not None:
            raise OSError(f"writing {self.path} failed: {self._error}") from self._error
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self._handoff)
            except RuntimeError:  # no loop: hand over at once
                self._queue.put(line)
                return
        self._pending.append(line)

    def _handoff(self) -> None:
        if self._pending:
            self._queue.put("".join(self._pending))
            self._pending = []

    def _run(self) -> None:
        done = False
        try:
            while not done:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if None in batch:
                    done = True
                    batch = [b for b in batch if b is not None]
                if batch:
                    self._file.write("".join(batch))
                    self._file.flush()
        except BaseException as e:  # surfaced on the next write() / close()
            self._error = e
        finally:
            self._file.close()

    def close(self) -> None:
        """Write what is queued, flush, close. Blocks: call it through ``asyncio.to_thread`` on a loop."""
        self._handoff()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise OSError(f"writing {self.path} failed: {self._error}") from self._error


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Stream the objects of a JSONL file; a bad line raises ValueError naming file and line."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e})") from None


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a uniquely named temp file beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # like mkstemp, but the file gets the usual permissions (0666 less the umask), not 0600
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> int:
    """Write rows (dicts or pydantic models) atomically: a temp file renamed into place. Returns the count."""
    n = 0
    with atomic_file(path) as f:
        for row in rows:
            f.write(row.model_dump_json() if hasattr(row, "model_dump_json") else json.dumps(row, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    with atomic_file(path) as f:
        f.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
