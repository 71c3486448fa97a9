"""What the format stage reads: curated rollouts (by file offset), the tasks, the server's tools, the verifier.

Memory stays small: per rollout the index keeps a reward, a repeat and a byte offset in numpy columns
(``RolloutIndex``); rollouts are read back one task at a time. A run hands its stage what it knows (``Source.of_config``: its saved config, its
server's tools, the collection's one pass over the rollouts); ``Source.of_run`` finds the same beside a
``curated.jsonl`` on disk, for a dataset built apart from its run.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
from pydantic import ValidationError

from rollgen import jsonl
from rollgen.metrics import PASS_THRESHOLD
from rollgen.results import TaskStats
from rollgen.scan import RolloutScan, scan_rollouts
from rollgen.taskcodes import TaskCodes, TaskFile

__all__ = ["Entry", "Reader", "RolloutIndex", "Source", "TaskStats", "server_tools"]


class Entry(NamedTuple):
    reward: float | None
    repeat: int
    offset: int  # byte offset of the rollout's line in curated.jsonl


@dataclass(frozen=True)
class Source:
    curated: Path
    tasks: Path | None = None  # tasks.jsonl: ground truth and per-task tools
    tools: list[dict[str, Any]] | None = None  # the server's tools, offered to tasks without their own
    verifier: dict[str, Any] | None = None  # the verifier's spec (``_target_`` + params), for RL rows
    near_dedup: dict[str, Any] | None = None  # the run's near_dedup parameters when its chain has it (splits group by it)
    run_config: dict[str, Any] | None = None  # the run's config as run_config.json holds it (the card's provenance)
    collection: RolloutScan | None = None  # every rollout of the run, scanned once: RL pass rates, the card's counts
    notes: tuple[str, ...] = field(default=())  # what could not be found, for the dataset card
    rejected: dict[str, int] | None = None  # rows each quality filter dropped, when the caller knows (the funnel)

    @classmethod
    def of_config(cls, curated: str | os.PathLike[str], run_config: dict[str, Any], *,
                  tasks: str | os.PathLike[str] | None, tools: list[dict[str, Any]] | None,
                  collection: RolloutScan | None, notes: tuple[str, ...] = (),
                  rejected: dict[str, int] | None = None) -> Source:
        """What a run knows: its saved config (``run_config.json``'s content), its server's tools, its collection."""
        quality = run_config.get("quality") or {}
        near = None
        if "near_dedup" in (quality.get("chain") or []):
            near = (quality.get("filters") or {}).get("near_dedup") or {}
        return cls(curated=Path(curated), tasks=_file(Path(tasks)) if tasks else None, tools=tools or None,
                   verifier=run_config.get("verifier"), near_dedup=near, run_config=run_config, collection=collection,
                   notes=notes, rejected=rejected)

    @classmethod
    def of_run(cls, curated: str | os.PathLike[str], *, pass_threshold: float = PASS_THRESHOLD) -> Source:
        """``curated.jsonl`` plus what its run dir holds beside it: ``run_config.json`` (and the tools of the server
        it names), ``tasks.jsonl``, and ``rollouts.jsonl`` scanned once (``pass_threshold``: RL's)."""
        curated = Path(curated)
        d = curated.parent
        rollouts = _file(d / "rollouts.jsonl")
        collection = scan_rollouts(rollouts, pass_threshold=pass_threshold) if rollouts else None
        cfg_path = d / "run_config.json"
        if not cfg_path.is_file():
            return cls(curated=curated, tasks=_file(d / "tasks.jsonl"), collection=collection, notes=(
                f"no run_config.json beside {curated.name}: verifier spec and server tools unknown",))
        saved = json.loads(cfg_path.read_text(encoding="utf-8"))
        tools, note = server_tools(saved.get("server"))
        return cls.of_config(curated, saved, tasks=d / "tasks.jsonl", tools=tools, collection=collection,
                             notes=(note,) if note else ())


def _file(p: Path) -> Path | None:
    return p if p.is_file() else None


def server_tools(server: dict[str, Any] | None) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The tools of the server a saved config names, built from it; or None and why not (for the dataset card)."""
    if not server:
        return None, None
    from rollgen.build import build
    from rollgen.config import Component

    try:
        return build(Component.model_validate(server)).tools() or None, None
    except (ImportError, ValueError, ValidationError) as e:
        return None, f"server tools unknown ({server.get('_target_')}: {e}); rows carry no 'tools' column"


_KINDS: tuple[Any, ...] = (float, int, bool, type(None))


class RolloutIndex:
    """Per task, the reward, repeat and file offset of each of its rollouts, in file order: numpy columns (24 bytes a
    rollout) and one code per task id (``codes``, a ``TaskCodes``), never an object per rollout or per task."""

    def __init__(self, path: os.PathLike[str]):
        self.codes = codes = TaskCodes()
        task, repeat, reward, offset = array("i"), array("i"), array("d"), array("q")
        kind = bytearray()  # the reward's JSON type, given back as it was read: float, int, bool or None
        for line in jsonl.lines(path):
            r = jsonl.parse(path, line)
            task.append(codes.code(r["task_id"]))
            repeat.append(r.get("repeat", 0))
            value = r.get("reward")
            kind.append(_KINDS.index(type(value)) if type(value) in _KINDS else 0)
            reward.append(math.nan if value is None else value)
            offset.append(line.offset)
        t = np.frombuffer(task, dtype=np.int32) if len(task) else np.zeros(0, np.int32)
        self._order = np.argsort(t, kind="stable")  # rows of each task together, in file order
        self._start = np.searchsorted(t[self._order], np.arange(len(codes) + 1))
        self._repeat, self._reward, self._offset, self._kind = repeat, reward, offset, kind

    def __len__(self) -> int:
        return len(self._offset)

    def sorted_codes(self) -> np.ndarray:
        """Task codes in the order of their ids (sorted as strings)."""
        return self.codes.sorted_codes()

    def task_ids(self) -> list[str]:
        return [self.codes[c] for c in self.sorted_codes().tolist()]

    def entries(self, task_id: str) -> list[Entry]:
        code = self.codes.get(task_id)
        if code < 0:
            raise KeyError(task_id)
        rows = self._order[self._start[code]:self._start[code + 1]].tolist()
        return [Entry(_KINDS[self._kind[i]](self._reward[i]) if self._kind[i] != 3 else None, self._repeat[i],
                      self._offset[i]) for i in rows]


class Reader:
    """Reads rollouts and tasks back by offset; ``with Reader(source) as rd:``."""

    def __init__(self, source: Source):
        self.source = source
        self.index = RolloutIndex(source.curated)
        self.tasks = TaskFile(source.tasks)  # task id -> code -> the byte offset of its line (no tasks: empty)
        self._stack = ExitStack()
        self._curated: IO[bytes] | None = None
        self._tasks: IO[bytes] | None = None

    def __enter__(self) -> Reader:
        self._curated = self._stack.enter_context(open(self.source.curated, "rb"))
        if self.source.tasks:
            self._tasks = self._stack.enter_context(open(self.source.tasks, "rb"))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def task_ids(self) -> Iterator[str]:
        """The curated rollouts' task ids, sorted (one at a time: no list of them)."""
        return (self.index.codes[c] for c in self.index.sorted_codes().tolist())

    def entries(self, task_id: str) -> list[Entry]:
        """``task_id``'s curated rollouts, in file order."""
        return self.index.entries(task_id)

    def rollout(self, offset: int) -> dict[str, Any]:
        assert self._curated is not None
        self._curated.seek(offset)
        return jsonl.loads(self._curated.readline())

    def task(self, task_id: str) -> dict[str, Any] | None:
        offset = self.tasks.offset(task_id)
        if offset is None or self._tasks is None:
            return None
        self._tasks.seek(offset)
        return jsonl.loads(self._tasks.readline())

    def tools_for(self, task: dict[str, Any] | None) -> list[dict[str, Any]] | None:
        """The tools offered while solving ``task``: its own, else the server's (as the policy client does)."""
        return (task or {}).get("tools") or self.source.tools or None
