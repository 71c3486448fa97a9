"""The run-dir lock and the rollout cache's collection lock, as shared storage needs them (docs/scale.md).

An NFS client takes ``flock`` locks on the server, and an NFSv4 client refuses to lock a directory or, exclusively,
a file opened read-only. So both locks must be exclusive locks on regular files opened for writing: checked here
from the kernel's own record (``/proc/self/fdinfo``), along with what a waiting run is told.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import stat
import time
from pathlib import Path

import pytest

from rollgen.resume import collection_lock
from rollgen.rundir import LOCK_NAME, RunDirBusy, RunDirLock


def _write_flocks() -> list[tuple[int, int]]:
    """(inode, open flags) of each file descriptor of this process that holds an exclusive ``flock``."""
    held = []
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if re.search(r"^lock:.*\bFLOCK\s+ADVISORY\s+WRITE\b", info, re.M):
            fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
            held.append((int(fields["ino"]), int(fields["flags"], 8)))
    return held


def _assert_locked_for_writing(path: Path) -> None:
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode)
    held = _write_flocks()
    assert [ino for ino, _ in held] == [st.st_ino], (held, st.st_ino)
    assert held[0][1] & os.O_ACCMODE in (os.O_RDWR, os.O_WRONLY), oct(held[0][1])


def test_run_dir_lock_is_a_write_lock_on_a_file_in_the_dir(tmp_path: Path) -> None:
    lock_file = tmp_path / LOCK_NAME
    with RunDirLock(tmp_path):
        _assert_locked_for_writing(lock_file)  # not the directory (ENOLCK on NFSv4), not a read-only file (EBADF)
        assert lock_file.read_text() == f"{os.getpid()} {socket.gethostname()}\n"
        with pytest.raises(RunDirBusy, match=rf"in use by another rollgen process \(pid {os.getpid()}\);"):
            RunDirLock(tmp_path).acquire()
        lock_file.write_text("4242 node17\n")  # a holder on another machine (run dirs on shared storage)
        with pytest.raises(RunDirBusy, match=r"in use by another rollgen process \(pid 4242 on node17\);"):
            RunDirLock(tmp_path).acquire()
    assert not lock_file.exists() and _write_flocks() == []
    lock_file.write_text("4194999 node17\n")  # left by a holder killed with -9: the kernel dropped its lock
    with RunDirLock(tmp_path):
        assert lock_file.read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    assert not lock_file.exists()


def test_run_dir_lock_leaves_a_lock_file_it_does_not_hold(tmp_path: Path) -> None:
    """Releasing removes the lock file only while it is still the one held (the run dir was not emptied meanwhile)."""
    lock = RunDirLock(tmp_path)
    lock.acquire()
    (tmp_path / LOCK_NAME).unlink()  # as `rm -rf` of a run in use would
    with RunDirLock(tmp_path):  # the path names no held file now: a new run takes it
        lock.release()
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
        with pytest.raises(RunDirBusy):
            RunDirLock(tmp_path).acquire()


def test_a_second_collection_of_one_hash_waits_and_is_told_for_whom(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    lock_file = tmp_path / "rollouts" / "abc123.lock"
    caplog.set_level(logging.INFO, logger="rollgen")

    async def scenario() -> list[str]:
        order: list[str] = []
        release = asyncio.Event()

        async def first() -> None:
            async with collection_lock(tmp_path, "abc123"):
                order.append("first in")
                _assert_locked_for_writing(lock_file)
                assert lock_file.read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
                await release.wait()
                order.append("first out")

        async def second() -> None:
            async with collection_lock(tmp_path, "abc123"):
                order.append("second in")

        one = asyncio.create_task(first())
        while not order:
            await asyncio.sleep(0.01)  # polling a condition
        two = asyncio.create_task(second())
        deadline = time.monotonic() + 30
        while "waiting for" not in caplog.text:
            assert time.monotonic() < deadline and not two.done()
            await asyncio.sleep(0.01)  # polling a condition, with a deadline
        release.set()
        await asyncio.gather(one, two)
        return order

    assert asyncio.run(scenario()) == ["first in", "first out", "second in"]
    assert (f"waiting for pid {os.getpid()} on {socket.gethostname()}, which is collecting the same rollouts "
            f"(hash abc123, lock {lock_file})") in caplog.text
    assert "collection lock for hash abc123 taken after" in caplog.text
    assert lock_file.read_text() == ""  # emptied by its last holder; never removed


def test_a_file_system_without_locks_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NFSv4 answers ENOLCK to a lock it cannot take (a directory, or a mount with locking off on the server)."""
    import errno
    import fcntl

    from rollgen.errors import UserError

    def refuse(fd: object, op: int) -> None:
        if op & fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.raises(RunDirBusy, match=rf"^output_dir: cannot lock {tmp_path}/{LOCK_NAME} \(No locks available\); "):
        RunDirLock(tmp_path).acquire()  # a RunDirBusy: `rollgen verify` and `curate` print it and exit 2, as a run does

    async def collect() -> None:
        async with collection_lock(tmp_path / "cache", "abc123"):
            raise AssertionError("not reached")

    with pytest.raises(UserError, match=r"^cache_dir: cannot lock .*/rollouts/abc123.lock \(No locks available\); "):
        asyncio.run(collect())
