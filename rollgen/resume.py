"""Resume and the rollout cache: a collection is keyed by the hash of what produces it.

Every run registers its directory under ``<cache_dir>/rollouts/<hash>.runs``. A new run with the same
hash (the same command re-run after a crash, or a sweep job that differs only downstream) starts
from the newest registered run that has a ``rollouts.jsonl``: its *final* rollouts (status ``ok``,
``truncated``, ``verifier_error``) are copied into the new run dir, and only the missing or failed
(``error``, ``timeout``) ones are collected again. A line that is not valid JSON (the torn last
line of a killed run) is set aside in ``rollouts.torn.jsonl`` and counted, never copied.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FINAL_STATUSES", "Prior", "cache_root", "collection_lock", "find_prior", "register", "restore"]

FINAL_STATUSES = frozenset({"ok", "truncated", "verifier_error"})


def cache_root(configured: str | None) -> Path:
    """``cache_dir`` from the config, else ``$ROLLGEN_CACHE_DIR``, else ``~/.cache/rollgen``."""
    return Path(configured or os.environ.get("ROLLGEN_CACHE_DIR") or Path.home() / ".cache" / "rollgen").expanduser()


def _index(cache: Path, config_hash: str) -> Path:
    return cache / "rollouts" / f"{config_hash}.runs"


@contextmanager
def collection_lock(cache: Path, config_hash: str) -> Iterator[None]:
    """Held while collecting: a second run with the same hash waits, then reuses instead of re-collecting."""
    path = cache / "rollouts" / f"{config_hash}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def find_prior(cache: Path, config_hash: str, exclude: Path) -> Path | None:
    """The newest registered run dir of this hash (other than ``exclude``) that has rollouts."""
    index = _index(cache, config_hash)
    if not index.is_file():
        return None
    for line in reversed(index.read_text(encoding="utf-8").splitlines()):
        run = Path(line)
        if run.resolve() != exclude.resolve() and (run / "rollouts.jsonl").is_file():
            return run
    return None


def register(cache: Path, config_hash: str, run_dir: Path) -> None:
    index = _index(cache, config_hash)
    index.parent.mkdir(parents=True, exist_ok=True)
    with open(index, "a", encoding="utf-8") as f:
        f.write(f"{run_dir.resolve()}\n")


@dataclass
class Prior:
    """What a run starts from."""

    source: str | None = None
    reused: int = 0
    retried: int = 0  # failed rollouts dropped so they are collected again
    torn: int = 0
    done: set[str] = field(default_factory=set)
    rescore: bool = False  # reused rollouts were verified under another verifier/guards config


def restore(source: Path, dest: Path, aside: Path) -> Prior:
    """Copy ``source``'s final rollouts into ``dest`` (atomically; ``source`` may be ``dest``), last line per id.

    Streams twice over the source: first to find the last final line of each id, then to copy them.
    """
    prior = Prior(source=str(source))
    last: dict[str, int] = {}
    failed: set[str] = set()
    bad: list[bytes] = []
    with open(source, "rb") as f:
        offset = 0
        for raw in f:
            try:
                row = json.loads(raw)
                rid, status = row["id"], row["status"]
            except (ValueError, KeyError, TypeError):
                bad.append(raw)
            else:
                if status in FINAL_STATUSES:
                    last[rid] = offset
                    failed.discard(rid)
                elif rid not in last:
                    failed.add(rid)
            offset += len(raw)
    prior.torn, prior.retried, prior.reused, prior.done = len(bad), len(failed), len(last), set(last)
    if bad:
        with open(aside, "ab") as out:
            out.writelines(b if b.endswith(b"\n") else b + b"\n" for b in bad)
    tmp = dest.with_suffix(".jsonl.restore")
    with open(source, "rb") as f, open(tmp, "wb") as out:
        for offset in sorted(last.values()):
            f.seek(offset)
            out.write(f.readline())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dest)
    return prior
