"""What the format stage reads: curated rollouts (by file offset), the tasks, the server's tools, the verifier.

Memory stays small: per rollout the index keeps a reward, a repeat and a byte offset; rollouts are read
back one task at a time. ``Source.of_run`` finds everything else beside ``curated.jsonl`` in the run dir.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from pydantic import ValidationError

__all__ = ["Entry", "Reader", "Source", "TaskStats"]


class Entry(NamedTuple):
    reward: float | None
    repeat: int
    offset: int  # byte offset of the rollout's line in curated.jsonl


class TaskStats(NamedTuple):
    """Rewards of one task's scored rollouts, as collected (before quality filters)."""

    n: int
    total: float
    total_sq: float
    passed: int


@dataclass(frozen=True)
class Source:
    curated: Path
    rollouts: Path | None = None  # every rollout, for the pass rates of RL rows
    tasks: Path | None = None  # tasks.jsonl: ground truth and per-task tools
    tools: list[dict[str, Any]] | None = None  # the server's tools, offered to tasks without their own
    verifier: dict[str, Any] | None = None  # the verifier's spec (``_target_`` + params), for RL rows
    near_dedup: dict[str, Any] | None = None  # the run's near_dedup parameters when its chain has it (splits group by it)
    notes: tuple[str, ...] = field(default=())  # what could not be found, for the dataset card

    @classmethod
    def of_run(cls, curated: str | os.PathLike[str]) -> Source:
        """``curated.jsonl`` plus what its run dir holds beside it (rollouts, tasks, run_config.json)."""
        curated = Path(curated)
        d = curated.parent
        notes: list[str] = []
        tools = verifier = near = None
        cfg_path = d / "run_config.json"
        if cfg_path.is_file():
            saved = json.loads(cfg_path.read_text(encoding="utf-8"))
            verifier = saved.get("verifier")
            quality = saved.get("quality") or {}
            if "near_dedup" in (quality.get("chain") or []):
                near = (quality.get("filters") or {}).get("near_dedup") or {}
            tools, note = _server_tools(saved.get("server"))
            if note:
                notes.append(note)
        else:
            notes.append(f"no run_config.json beside {curated.name}: verifier spec and server tools unknown")
        return cls(curated=curated, rollouts=_file(d / "rollouts.jsonl"), tasks=_file(d / "tasks.jsonl"),
                   tools=tools, verifier=verifier, near_dedup=near, notes=tuple(notes))


def _file(p: Path) -> Path | None:
    return p if p.is_file() else None


def _server_tools(server: dict[str, Any] | None) -> tuple[list[dict[str, Any]] | None, str | None]:
    if not server:
        return None, None
    from rollgen.build import build
    from rollgen.config import Component

    try:
        return build(Component.model_validate(server)).tools() or None, None
    except (ImportError, ValueError, ValidationError) as e:
        return None, f"server tools unknown ({server.get('_target_')}: {e}); rows carry no 'tools' column"


def index_rollouts(path: os.PathLike[str]) -> dict[str, list[Entry]]:
    """Per task, the reward, repeat and file offset of each rollout: a few bytes each, not whole rollouts."""
    groups: dict[str, list[Entry]] = defaultdict(list)
    offset = 0
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    r = json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e})") from None
                groups[r["task_id"]].append(Entry(r.get("reward"), r.get("repeat", 0), offset))
            offset += len(line)
    return groups


def _offsets(path: os.PathLike[str]) -> dict[str, int]:
    """Byte offset of each task's line in a tasks.jsonl."""
    out: dict[str, int] = {}
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                out.setdefault(json.loads(line)["id"], offset)
            offset += len(line)
    return out


def task_stats(path: os.PathLike[str], pass_threshold: float) -> dict[str, TaskStats]:
    """Per task, the rewards of its scored rollouts (``reward`` not null), streamed."""
    acc: dict[str, list[float]] = {}
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            reward = r.get("reward")
            if reward is None:
                continue
            a = acc.setdefault(r["task_id"], [0, 0.0, 0.0, 0])
            a[0] += 1
            a[1] += reward
            a[2] += reward * reward
            a[3] += reward >= pass_threshold
    return {t: TaskStats(int(a[0]), a[1], a[2], int(a[3])) for t, a in acc.items()}


class Reader:
    """Reads rollouts and tasks back by offset; ``with Reader(source) as rd:``."""

    def __init__(self, source: Source):
        self.source = source
        self.groups = index_rollouts(source.curated)
        self.task_offsets = _offsets(source.tasks) if source.tasks else {}
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
        return iter(sorted(self.groups))

    def rollout(self, offset: int) -> dict[str, Any]:
        assert self._curated is not None
        self._curated.seek(offset)
        return json.loads(self._curated.readline())

    def task(self, task_id: str) -> dict[str, Any] | None:
        offset = self.task_offsets.get(task_id)
        if offset is None or self._tasks is None:
            return None
        self._tasks.seek(offset)
        return json.loads(self._tasks.readline())

    def tools_for(self, task: dict[str, Any] | None) -> list[dict[str, Any]] | None:
        """The tools offered while solving ``task``: its own, else the server's (as the policy client does)."""
        return (task or {}).get("tools") or self.source.tools or None
