"""The supervisor: PID 1 of the sandbox (or, without namespaces, the launcher itself). It runs each execution
in a confined child, feeds its stdin, reads its stdout, stderr and probe channel with caps, enforces the
wall clock, kills everything the child started, and reports one frame per execution on fd 1.

A frame is ``R <exit code> <flags> <seconds> <len out> <len err> <len channel>\\n`` and the three byte
strings; flags: ``t`` timed out, ``o`` an output cap was hit, ``c`` the child could not be confined (the
code never ran; its stderr says why), ``-`` none. ``D\\n`` ends the job.
"""

import os
import select
import signal
import time

__all__ = ["CHANNEL_CAP", "Supervisor", "write_all"]

CHANNEL_CAP = 4 << 20
_ERR_TAIL = 8192
_CHUNK = 1 << 16


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class Supervisor:
    """``namespaced``: we are PID 1 and ``kill(-1)`` reaches exactly the sandbox's processes. Otherwise the
    child leads its own process group and orphans reparent to us (a child subreaper)."""

    def __init__(self, namespaced: bool, max_output: int, death_fd: "int | None" = None):
        self.namespaced, self.max_output, self.death_fd = namespaced, max_output, death_fd

    def kill_all(self, child: int) -> None:
        if self.namespaced:
            try:
                os.kill(-1, signal.SIGKILL)  # from PID 1: every process of the namespace but us
            except ProcessLookupError:
                pass
            return
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(100):  # orphans that left the group were reparented to us
            strays = _children(os.getpid())
            if not strays:
                break
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _reap(block=False)

    def execute(self, child, stdin: "bytes | None", timeout: float, channel: bool) -> None:
        """Fork ``child(ok_fd)`` (a function that never returns; it writes ``1`` to ``ok_fd`` and closes it once
        confined, before the code runs) with fresh pipes; report its frame on fd 1."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        chan_r, chan_w = os.pipe() if channel else (None, None)
        in_r, in_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), None)
        ok_r, ok_w = os.pipe()  # opened last: above every descriptor the child moves to 0-3
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(in_r, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                if chan_w is not None:
                    os.dup2(chan_w, 3)
                os.closerange(4 if channel else 3, ok_w)
                os.closerange(ok_w + 1, 1 << 16)
                if not self.namespaced:
                    os.setsid()
                child(ok_w)
            finally:
                os._exit(70)
        for fd in (in_r, out_w, err_w, chan_w, ok_w):
            if fd is not None:
                os.close(fd)
        confined = os.read(ok_r, 1) == b"1"  # the child says so before the code runs, or dies
        os.close(ok_r)
        caps = {out_r: self.max_output, err_r: self.max_output}
        if chan_r is not None:
            caps[chan_r] = CHANNEL_CAP
        bufs = {fd: bytearray() for fd in caps}
        status, flags = self._watch(pid, caps, bufs, err_r, in_w, stdin or b"", t0 + timeout)
        if not confined:
            flags.add("c")
        err = bytes(bufs[err_r][-_ERR_TAIL:])
        frame = [bytes(bufs[out_r]), err, bytes(bufs[chan_r]) if chan_r is not None else b""]
        head = (f"R {os.waitstatus_to_exitcode(status)} {''.join(sorted(flags)) or '-'} "
                f"{time.monotonic() - t0:.6f} {' '.join(str(len(b)) for b in frame)}\n")
        write_all(1, head.encode() + b"".join(frame))

    def _watch(self, pid: int, caps: dict, bufs: dict, tail_fd: int, in_w: "int | None", stdin: bytes,
               deadline: float):
        poller = select.poll()
        for fd in caps:
            poller.register(fd, select.POLLIN)
        if in_w is not None:
            os.set_blocking(in_w, False)
            poller.register(in_w, select.POLLOUT)
        if self.death_fd is not None:
            poller.register(self.death_fd, select.POLLIN)
        try:
            exited: "int | None" = os.pidfd_open(pid)
            poller.register(exited, select.POLLIN)
        except (AttributeError, OSError):  # Linux < 5.3: poll the child's status every 20 ms
            exited = None
        status, flags, killed, sent = None, set(), False, 0
        seen = dict.fromkeys(caps, 0)
        while True:
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
            if not killed and (status is not None or time.monotonic() >= deadline):
                if status is None:
                    flags.add("t")
                self.kill_all(pid)  # the child is done or out of time: so is everything it started
                killed = True
            if not seen and status is not None:
                break
            wait_ms = 20 if exited is None or killed else max(1, int((deadline - time.monotonic()) * 1000) + 1)
            for fd, _ in poller.poll(wait_ms):
                if fd == self.death_fd:
                    self.kill_all(pid)
                    os._exit(9)  # the launcher is gone, and rollgen with it or done waiting
                if fd == exited:
                    poller.unregister(fd)
                elif fd == in_w:
                    try:
                        sent += os.write(in_w, stdin[sent:sent + _CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the child stopped reading: the rest is not needed
                        sent = len(stdin)
                    if sent >= len(stdin):
                        poller.unregister(in_w)
                        os.close(in_w)
                        in_w = None
                elif not (chunk := os.read(fd, _CHUNK)):
                    poller.unregister(fd)
                    os.close(fd)
                    del seen[fd]
                else:
                    seen[fd] += len(chunk)
                    buf = bufs[fd]
                    buf += chunk
                    if fd == tail_fd:  # stderr keeps its tail
                        del buf[:-_ERR_TAIL]
                    elif len(buf) > caps[fd]:
                        del buf[caps[fd]:]
                    if seen[fd] > caps[fd] and not killed:
                        flags.add("o")
                        self.kill_all(pid)
                        killed = True
        for fd in (in_w, exited):
            if fd is not None:
                os.close(fd)
        self._reap_all()
        return status, flags

    def _reap_all(self) -> None:
        """Collect every exited child. As PID 1 these are the whole namespace's processes: kill and wait
        until none is left, so nothing the code started outlives the execution."""
        if not self.namespaced:
            _reap(block=False)
            return
        while True:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return


def _reap(block: bool) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _children(me: int) -> "list[int]":
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(b")") + 2:].split()[1]) == me:
                found.append(int(name))
    return found
