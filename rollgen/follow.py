"""Quality's first pass during collection: a child process reads ``rollouts.jsonl`` while it is written.

Collection keeps one core busy (HTTP, parsing replies, verification); the first pass over the rollouts
(parse every line, the report's scan, every row filter, the dedup hashing, the metrics) would otherwise
start only when collection ends. ``Follower`` starts a child process (``workers.process_context``: it
never re-runs the user's main script) that follows the file as collection appends whole lines to it
(``jsonl.follow``) and runs exactly the serial stage's code on them (``quality.curate`` with its lines
given, ``scan.Scanner`` as an observer), so when collection ends only the decisions and the second pass
are left. The parent talks to it over a pipe:

    parent                      child
    "end"  (collection ended)   reads the rest, ends the first pass  ->  ("scan", the scan's counts: partial)
    "curate"                    decides, writes curated/rejected       ->  ("curation", Curation)
                                lets the first pass's state go; pass@k (and RL's per-task tallies)  ->  ("rest", ScanRest)
                                draws the plots (while the parent formats and exports)  ->  ("plots", paths)
    "stop"                      ends without writing anything

The parent never holds the per-rollout state: what it receives is a few hundred bytes whatever the run's size
(RL's per-task tallies aside), and the child's memory is given back before it builds anything new; after its last
answer the child ends.

Nothing depends on it: a child that fails, dies or is stopped leaves no file behind (its temp files are
removed, as a serial stage's are), and the engine then runs the stage itself after collection.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rollgen.config import QualityConfig

__all__ = ["AUTO_MIN_ROLLOUTS", "Follower", "FollowerFailed", "wanted"]

log = logging.getLogger("rollgen")

AUTO_MIN_ROLLOUTS = 10_000  # ``quality.overlap: auto`` follows a run that collects at least this many
POLL_S = 0.05  # how long the child waits for the parent's word once it has read everything written


def wanted(setting: bool | str, to_collect: int) -> bool:
    """Whether ``quality.overlap`` (``setting``) asks for a follower, for a run that collects ``to_collect`` rollouts."""
    if setting == "auto":
        return to_collect >= AUTO_MIN_ROLLOUTS and (os.cpu_count() or 1) >= 2
    return bool(setting)


class FollowerFailed(RuntimeError):
    """The child ended without the result asked for (an error in it, or it died); the stage runs serially."""


class _Stopped(Exception):
    """The parent said "stop"."""


@dataclass(frozen=True)
class Job:
    """What the child needs: the stage's config and the run's files."""

    quality: QualityConfig
    rollouts: Path
    curated: Path
    rejected: Path
    tasks: Path
    pass_threshold: float
    plots: bool = False  # draw the run's plots after curating (``quality.plots``)
    tallies: bool = False  # send each task's reward tallies with pass@k (the RL format's rows read them)


class Follower:
    """The child process and its pipe. ``start``, ``scan`` and ``curate`` block: call them from worker threads."""

    def __init__(self, job: Job):
        self.job = job
        self._proc: Any = None
        self._conn: Any = None

    def start(self) -> None:
        from rollgen.workers import process_context

        ctx = process_context("spawn")  # one process (a forkserver would stay beside it, ~70 MB, for the run)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child, self.job), name="rollgen-quality-follower", daemon=True)
        self._proc.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def scan(self) -> Any:
        """Collection has ended: the child reads the rest of the file; its ``RolloutScan``'s counts (``partial``)."""
        return self._ask("end", "scan")

    def curate(self) -> Any:
        """The first pass has ended: the child decides and writes curated/rejected; its ``Curation``."""
        return self._ask("curate", "curation")

    def rest(self) -> Any:
        """After ``curate``: the rest of the scan, a ``ScanRest`` (pass@k; the per-task tallies when ``Job.tallies``)."""
        return self._ask(None, "rest")

    def plots(self) -> list[str]:
        """The plots the child drew after curating (paths relative to the run dir)."""
        return self._ask(None, "plots")

    def _ask(self, word: str | None, reply: str) -> Any:
        try:
            if word is not None:
                self._conn.send(word)
            while not self._conn.poll(0.1):  # a short wait at a time, so a stop request reaches this thread
                if not self._proc.is_alive() and not self._conn.poll(0):
                    raise FollowerFailed(f"the quality follower died (exit code {self._proc.exitcode})")
            kind, value = self._conn.recv()
        except (EOFError, OSError, BrokenPipeError) as e:
            raise FollowerFailed(f"the quality follower is gone ({e or type(e).__name__})") from None
        if kind == "error":
            raise FollowerFailed(f"the quality follower failed: {value}")
        if kind != reply:
            raise FollowerFailed(f"the quality follower answered {kind!r}, not {reply!r}")
        return value

    def close(self) -> None:
        """Stop the child (if it still runs) and reap it; temp files it was writing are removed by it."""
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if proc is None:
            return
        try:
            if proc.is_alive():
                try:
                    conn.send("stop")
                except OSError:
                    pass
                proc.join(5)
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the child's handler exits through its finally blocks
                proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        finally:
            conn.close()


def _fixed_mmap_threshold() -> None:
    """glibc raises its mmap threshold whenever a large block is freed; after that, the first pass's growing
    columns are reallocated inside the heap and leave holes of their own size behind (300,000 rollouts: 214 ->
    176 MB at the end of the pass). Fixing the threshold at glibc's default (128 KiB) keeps large blocks in
    their own mappings. This process only (it is rollgen's own); elsewhere than glibc it does nothing."""
    _libc_call("mallopt", -3, 128 * 1024)  # M_MMAP_THRESHOLD


def _give_back_memory() -> None:
    """Free what the first pass left (cycles included) and return the heap's free pages to the system (glibc's
    ``malloc_trim``; elsewhere only the collection), so the child's next work starts from a small RSS."""
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        _libc_call("malloc_trim", 0)


def _libc_call(name: str, *args: int) -> None:
    """Call the C library's ``name`` (glibc's allocator tuning); nothing where it has none."""
    try:
        import ctypes

        getattr(ctypes.CDLL(None), name)(*args)
    except (OSError, AttributeError, TypeError):
        pass


def _child(conn: Any, job: Job) -> None:
    """The follower's main: follow, scan, wait for the word, curate."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # exit through finally blocks (temp files removed)
    if sys.platform.startswith("linux"):
        _fixed_mmap_threshold()
    from rollgen import jsonl, quality
    from rollgen.report import draw_plots
    from rollgen.scan import Scanner

    def word() -> str:
        msg = conn.recv()
        if msg == "stop":
            raise _Stopped
        return str(msg)

    def more() -> bool:
        """Caught up with the writer: True to look again, False once collection has ended ("end")."""
        if not conn.poll(POLL_S):
            return True
        word()
        return False

    scanner = Scanner(job.pass_threshold)
    codes: list[Any] = []  # the chain's task table, kept past the first pass only for the tallies

    def first_pass_done(scanner: Scanner, rows: Any) -> None:
        conn.send(("scan", scanner.result(job.rollouts, codes=rows.task_ids, partial=True)))
        if job.tallies:
            codes.append(rows.task_ids)
        word()  # "curate"

    try:
        curation = quality.curate(job.quality, job.rollouts, job.curated, job.rejected, tasks=job.tasks,
                                  lines=jsonl.follow(job.rollouts, more), observers=[scanner.observe],
                                  after_first_pass=partial(first_pass_done, scanner))
        conn.send(("curation", curation))
        _give_back_memory()  # the first pass's columns, dedup index and observers' state are gone with curate's frame
        rest = scanner.rest(codes.pop() if codes else None)
        del scanner  # its pass@k codes (12 bytes a rollout) too, before the plots
        conn.send(("rest", rest))
        if job.plots:  # matplotlib (~30 MB) is imported only now, after the first pass's peak
            _give_back_memory()
            conn.send(("plots", draw_plots(True, job.rollouts.parent, curation, rest.pass_at_k)))
    except (_Stopped, EOFError, KeyboardInterrupt):
        pass
    except Exception as e:  # reported to the parent, which runs the stage itself
        try:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass
        log.debug("quality follower failed:\n%s", traceback.format_exc())
    finally:
        conn.close()
