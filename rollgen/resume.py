"""Resume and the rollout cache: a collection is keyed by the hash of what produces it.

A run dir's ``rollouts.jsonl`` holds rollouts of one collection hash (each row carries it as
``config_hash``). Rollouts of other hashes, or of repeat indices the current run does not ask for, are
kept beside it as ``rollouts.<hash>.jsonl``, so nothing collected is ever dropped:

* a run into a dir whose ``rollouts.jsonl`` has another hash (a changed temperature, model, task file or
  endpoint) sets that file aside as ``rollouts.<old hash>.jsonl`` and collects afresh, saying so;
* a run with fewer repeats than the dir holds keeps only the repeat indices it asks for in
  ``rollouts.jsonl``; the others wait in ``rollouts.<hash>.jsonl`` for a run that wants them.

Every run registers its directory under ``<cache_dir>/rollouts/<hash>.runs``. A run starts from its own
dir's files of its hash, then from other registered runs of the same hash (newest first, until every
rollout it needs is found): their *final* rollouts (status ``ok``, ``truncated``, ``verifier_error``)
with a repeat index below ``num_repeats`` are copied in, and only the missing or failed (``error``,
``timeout``) ones are collected again. A line that is not valid JSON (the torn last line of a killed run)
is set aside in ``rollouts.torn.jsonl`` and counted, never copied.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rollgen.errors import UserError
from rollgen.jsonl import atomic_file
from rollgen.logs import logging_off_the_loop

__all__ = ["FINAL_STATUSES", "Prior", "collection_lock", "file_hash", "find_sources", "own_sources",
           "register", "restore", "set_aside_other_hash"]

log = logging.getLogger("rollgen")

FINAL_STATUSES = frozenset({"ok", "truncated", "verifier_error"})
_LOCK_POLL_S = 0.1


def _index(cache: Path, config_hash: str) -> Path:
    return cache / "rollouts" / f"{config_hash}.runs"


@asynccontextmanager
async def collection_lock(cache: Path, config_hash: str) -> AsyncIterator[None]:
    """Held while collecting: a second run with the same hash waits (cancellably), then reuses instead of
    re-collecting.

    The lock is an exclusive ``flock`` on ``<cache>/rollouts/<hash>.lock``, a file opened for writing (so NFS
    clients take it on the server: see docs/scale.md), never removed. Its holder writes ``pid N on HOST``
    into it (and empties it when done); a run that has to wait logs that once, and how long it waited.
    """
    path = cache / "rollouts" / f"{config_hash}.lock"
    f = await asyncio.to_thread(_open_lock_file, path)  # every step on the file in a thread: NFS may be slow
    try:
        async with logging_off_the_loop():
            waited_since = None
            while not await asyncio.to_thread(_try_lock, f, path):
                if waited_since is None:
                    waited_since = time.monotonic()
                    holder = await asyncio.to_thread(_holder, f)
                    log.info("waiting for %s, which is collecting the same rollouts (hash %s, lock %s); this run "
                             "reuses them when it is done", holder, config_hash, path)
                await asyncio.sleep(_LOCK_POLL_S)
            try:
                await asyncio.to_thread(_write_holder, f, f"pid {os.getpid()} on {socket.gethostname()}\n")
                if waited_since is not None:
                    log.info("collection lock for hash %s taken after %.1f s", config_hash,
                             time.monotonic() - waited_since)
                yield
            finally:
                await asyncio.to_thread(_unlock, f)
    finally:
        await asyncio.to_thread(f.close)


def _open_lock_file(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666), "r+b")


def _try_lock(f: BinaryIO, path: Path) -> bool:
    """Take the lock if it is free (True), else False. A file system without locks is a ``UserError``."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:  # ENOLCK, ENOSYS: a file system without (cluster-wide) locks
        raise UserError(f"cache_dir: cannot lock {path} ({e.strerror or e}); put cache_dir on a file system "
                        "that supports flock (docs/scale.md)") from None


def _holder(f: BinaryIO) -> str:
    f.seek(0)
    return f.read(200).decode("utf-8", "replace").strip() or "another process"


def _write_holder(f: BinaryIO, text: str) -> None:
    f.seek(0)
    f.truncate()
    f.write(text.encode())
    f.flush()


def _unlock(f: BinaryIO) -> None:
    f.seek(0)
    f.truncate()
    fcntl.flock(f, fcntl.LOCK_UN)


def file_hash(path: Path) -> str | None:
    """The collection hash of a rollouts file: its first valid row's ``config_hash`` (None: no valid row)."""
    try:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    return str(json.loads(raw)["config_hash"])
                except (ValueError, KeyError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return None


def set_aside_other_hash(run_dir: Path, config_hash: str) -> str | None:
    """Move ``rollouts.jsonl`` to ``rollouts.<its hash>.jsonl`` if it holds another collection; return the new name."""
    current = run_dir / "rollouts.jsonl"
    theirs = file_hash(current)
    if theirs is None or theirs == config_hash:
        return None
    target = run_dir / f"rollouts.{theirs}.jsonl"
    if target.exists():  # other repeats of that collection already wait there: add these to them
        with open(current, "rb") as src, open(target, "ab") as out:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        current.unlink()
    else:
        os.replace(current, target)
    return target.name


def own_sources(run_dir: Path, config_hash: str) -> list[Path]:
    """The files of ``run_dir`` that hold rollouts of ``config_hash``: ``rollouts.jsonl``, ``rollouts.<hash>.jsonl``."""
    out = []
    if file_hash(run_dir / "rollouts.jsonl") == config_hash:
        out.append(run_dir / "rollouts.jsonl")
    if (run_dir / f"rollouts.{config_hash}.jsonl").is_file():
        out.append(run_dir / f"rollouts.{config_hash}.jsonl")
    return out


def find_sources(cache: Path, config_hash: str, exclude: Path) -> list[Path]:
    """Rollout files of ``config_hash`` in the registered run dirs other than ``exclude``, newest run first."""
    index = _index(cache, config_hash)
    if not index.is_file():
        return []
    seen = {exclude.resolve()}
    out: list[Path] = []
    for line in reversed(index.read_text(encoding="utf-8").splitlines()):
        run = Path(line).resolve()
        if run in seen:
            continue
        seen.add(run)
        out += own_sources(run, config_hash)
    return out


def register(cache: Path, config_hash: str, run_dir: Path) -> None:
    index = _index(cache, config_hash)
    index.parent.mkdir(parents=True, exist_ok=True)
    with open(index, "a", encoding="utf-8") as f:
        f.write(f"{run_dir.resolve()}\n")


@dataclass
class Prior:
    """What a run starts from."""

    source: str | None = None  # the files reused from, comma-separated
    reused: int = 0
    retried: int = 0  # failed rollouts dropped so they are collected again
    torn: int = 0
    done: set[str] = field(default_factory=set)
    rescore: bool = False  # reused rollouts were verified under another verifier/guards config
    used: list[Path] = field(default_factory=list)  # the source files that gave rollouts
    kept_aside: int = 0  # this dir's rollouts of other repeat indices, kept in rollouts.<hash>.jsonl
    set_aside: str | None = None  # rollouts.<old hash>.jsonl when the dir held another collection


def restore(sources: list[Path], dest: Path, aside: Path, config_hash: str, repeats: int,
            needed: int | None = None) -> Prior:
    """Copy the final rollouts of ``config_hash`` with ``repeat < repeats`` from ``sources`` into ``dest``.

    ``sources`` are in priority order (a rollout id is taken from the first source that has it final, the
    last such line in that source); reading stops once ``needed`` rollouts are found. Rollouts of other
    repeat indices from ``dest``'s own directory move to ``rollouts.<hash>.jsonl`` there (so its own files
    are always read whole). ``dest`` may be one of the sources; it is replaced atomically.
    """
    here = dest.parent.resolve()
    own = [s.parent.resolve() == here for s in sources]
    chosen: dict[str, tuple[int, int, int]] = {}  # id -> (source index, offset, repeat)
    failed: set[str] = set()
    bad: list[bytes] = []
    scanned = 0
    for i, src in enumerate(sources):
        last: dict[str, tuple[int, int]] = {}
        with open(src, "rb") as f:
            offset = 0
            for raw in f:
                try:
                    row = json.loads(raw)
                    rid, status, repeat, rhash = row["id"], row["status"], int(row["repeat"]), row.get("config_hash")
                except (ValueError, KeyError, TypeError):
                    bad.append(raw)
                else:
                    if rhash == config_hash:
                        if status in FINAL_STATUSES:
                            last[rid] = (offset, repeat)
                        elif repeat < repeats:
                            failed.add(rid)
                offset += len(raw)
        scanned = i + 1
        for rid, (off, repeat) in last.items():
            chosen.setdefault(rid, (i, off, repeat))
        if needed is not None and not any(own[i + 1:]) and sum(r < repeats for _, _, r in chosen.values()) >= needed:
            break
    keep = sorted((s, o) for s, o, r in chosen.values() if r < repeats)
    beyond = sorted((s, o) for s, o, r in chosen.values() if r >= repeats and own[s])
    prior = Prior(source=", ".join(str(s) for s in sources[:scanned]) or None, torn=len(bad))
    prior.done = {rid for rid, (_, _, r) in chosen.items() if r < repeats}
    prior.reused, prior.kept_aside = len(keep), len(beyond)
    prior.retried = len(failed - prior.done)
    prior.used = [sources[s] for s in sorted({s for s, _ in keep})]
    if bad:
        with open(aside, "ab") as out:
            out.writelines(b if b.endswith(b"\n") else b + b"\n" for b in bad)
    extra = dest.parent / f"rollouts.{config_hash}.jsonl"
    with ExitStack() as stack:
        files = [stack.enter_context(open(s, "rb")) for s in sources[:scanned]]
        # Inner first: dest is in place before the extra file loses what moved into dest (a crash between
        # the two leaves a rollout in both files, never in neither).
        out_extra = stack.enter_context(atomic_file(extra, "wb")) if beyond else None
        with atomic_file(dest, "wb") as out:
            _copy(files, keep, out)
        if out_extra is not None:
            _copy(files, beyond, out_extra)
    if not beyond:
        extra.unlink(missing_ok=True)
    return prior


def _copy(files: list, picks: list[tuple[int, int]], out) -> None:  # type: ignore[type-arg]
    for s, offset in picks:
        files[s].seek(offset)
        line = files[s].readline()
        out.write(line if line.endswith(b"\n") else line + b"\n")
    out.flush()
    os.fsync(out.fileno())
