"""One rollout row as filters see it: the raw dict plus text features computed once, on first use."""

from __future__ import annotations

import json
import math
import os
from array import array
from pathlib import Path
from typing import IO, Any

import numpy as np

from rollgen.quality.batch import Batch
from rollgen.quality.text import MinHasher, exact_key
from rollgen.records import rollout_id
from rollgen.taskcodes import TaskCodes

__all__ = ["Reason", "RowView", "Rows", "content_text", "prompt_text"]

Reason = tuple[str, str]
PROMPT_CACHE = 4096  # tasks whose prompt words are kept (rollouts of one task are written close together)  # (label counted in the funnel, detail for rejected.jsonl)


def content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def prompt_text(messages: list[dict[str, Any]] | None) -> str:
    """The user turns before the first assistant turn (system prompts are shared boilerplate, left out)."""
    parts = []
    for m in messages or []:
        if m.get("role") == "assistant":
            break
        if m.get("role") == "user":
            parts.append(content_text(m.get("content")))
    return "\n".join(parts)


class _lazy:
    """``functools.cached_property`` without its per-access lock (Python 3.11 takes one): computed once."""

    def __init__(self, f: Any):
        self.f, self.name = f, f.__name__

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.f(obj)
        return value


class RowView:
    """``row`` with ``index`` (line order), ``task`` (a small int per task id) and lazy text features."""

    def __init__(self, row: dict[str, Any], index: int, task: int, prompts: dict[int, tuple[Batch, int]] | None = None,
                 batch: Batch | None = None, pos: int = 0):
        self.row, self.index, self.task = row, index, task
        self._prompts = prompts  # prompt words of recent tasks: the rollouts of one task share its prompt
        self.batch, self.pos = batch or Batch([self.completion]), pos

    @property
    def reward(self) -> float:
        r = self.row.get("reward")
        return float(r) if isinstance(r, (int, float)) else math.nan

    @_lazy
    def completion(self) -> str:
        c = self.row.get("completion")
        return c if isinstance(c, str) else ""

    @_lazy
    def prompt(self) -> str:
        return prompt_text(self.row.get("messages"))

    @_lazy
    def completion_words(self) -> np.ndarray:
        return self.batch.words(self.pos)

    def repetition(self, n: int) -> tuple[float, int]:
        """``1 - distinct / total`` word n-grams of the completion, and the total."""
        ratio, total = self.batch.repetition(n)
        return float(ratio[self.pos]), int(total[self.pos])

    def signature(self, hasher: MinHasher, n: int) -> np.ndarray:
        """MinHash signature of the completion's word n-grams."""
        return self.batch.signatures(hasher, n)[self.pos]

    @_lazy
    def _prompt_features(self) -> tuple[Batch, int]:
        """The batch of prompts that hashed this row's task's prompt, and its place there."""
        cached = self._prompts.get(self.task) if self._prompts is not None else None
        if cached is None:
            cached = Batch([self.prompt]), 0
            if self._prompts is not None:
                if len(self._prompts) >= PROMPT_CACHE:
                    del self._prompts[next(iter(self._prompts))]  # the oldest task
                self._prompts[self.task] = cached
        return cached

    @property
    def prompt_words(self) -> np.ndarray:
        batch, k = self._prompt_features
        return batch.words(k)

    @property
    def prompt_skeleton(self) -> int:
        """``text.skeleton`` of the prompt: its numbers and math symbols."""
        batch, k = self._prompt_features
        return int(batch.skeletons()[k])

    def prompt_signature(self, hasher: MinHasher, n: int) -> tuple[np.ndarray, int]:
        """MinHash signature of the prompt's shingles (``text.prompt_shingles``) and how many distinct ones it has,
        hashed with the other new prompts of the batch."""
        batch, k = self._prompt_features
        sigs, sizes = batch.prompt_signatures(hasher, n)
        return sigs[k], int(sizes[k])

    @_lazy
    def pair_key(self) -> int:
        """Exact-duplicate key of (prompt, completion) words, shared by ``exact_dedup`` and the metrics."""
        return int.from_bytes(exact_key(self.prompt_words, self.completion_words), "little")

    def usage(self, *keys: str) -> int | None:
        """The first of ``keys`` present in ``usage`` as an int (chat and responses APIs name them differently)."""
        usage = self.row.get("usage") or {}
        for k in keys:
            v = usage.get(k)
            if isinstance(v, int):
                return v
        return None

    @property
    def completion_tokens(self) -> int | None:
        return self.usage("completion_tokens", "output_tokens")

    @property
    def prompt_tokens(self) -> int | None:
        return self.usage("prompt_tokens", "input_tokens")


class Rows:
    """Columns of every row, filled in the first pass: task codes (``codes``: one table of task ids), rewards (NaN
    when none), repeats, and the byte offset of each row's line in ``path``, so a filter can read a few rows back
    (``read``). A row's id is not kept when it is ``rollout_id(task_id, repeat)``, as the engine writes them; other
    ids are kept apart (``row_id``)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._offsets = array("q")
        self._file: IO[bytes] | None = None
        self.codes = TaskCodes()  # task code <-> task id
        self._odd_ids: dict[int, str] = {}  # row -> its id, for ids that are not rollout_id(task_id, repeat)
        self._prompts: dict[int, tuple[Batch, int]] = {}  # task -> the batch of prompts that hashed its prompt, its place
        self._task = array("i")
        self._repeat = array("i")
        self._reward = array("d")
        self.task = np.zeros(0, dtype=np.int32)
        self.reward = np.zeros(0, dtype=np.float64)

    def add(self, batch: list[dict[str, Any]], offsets: list[int] | None = None) -> list[RowView]:
        """Views of a batch of rows, numbered on from the rows added before; ``offsets``: their lines' byte offsets."""
        if offsets is not None:
            self._offsets.extend(offsets)
        texts = [c if isinstance(c := row.get("completion"), str) else "" for row in batch]
        features = Batch(texts)
        views = []
        for pos, row in enumerate(batch):
            task_id = str(row.get("task_id", ""))
            index = len(self._task)
            view = RowView(row, index, self.codes.code(task_id), self._prompts, features, pos)
            repeat = row.get("repeat")
            repeat = repeat if type(repeat) is int and -2**31 <= repeat < 2**31 else -1
            row_id = str(row.get("id", index))
            if repeat < 0 or row_id != rollout_id(task_id, repeat):
                self._odd_ids[index] = row_id
            self._task.append(view.task)
            self._repeat.append(repeat)
            self._reward.append(view.reward)
            views.append(view)
        self._prompt_words(views)
        return views

    @property
    def task_ids(self) -> TaskCodes:
        """Task code -> task id."""
        return self.codes

    def row_id(self, i: int) -> str:
        """Row ``i``'s id (its ``id`` field; its index when it has none)."""
        odd = self._odd_ids.get(i)
        return odd if odd is not None else rollout_id(self.codes[self._task[i]], self._repeat[i])

    def _prompt_words(self, views: list[RowView]) -> None:
        """Hash the prompts of the batch's new tasks together, into the prompt cache."""
        new: dict[int, str] = {}
        for v in views:
            if v.task not in self._prompts and v.task not in new:
                new[v.task] = v.prompt
        if new:
            while len(self._prompts) + len(new) > PROMPT_CACHE and self._prompts:
                del self._prompts[next(iter(self._prompts))]  # the oldest task
            prompts = Batch(list(new.values()))
            for k, code in enumerate(new):
                self._prompts[code] = prompts, k

    def __len__(self) -> int:
        return len(self._task)

    def freeze(self) -> None:
        """The appended columns as numpy arrays for the decisions (views, not copies: no row is added after)."""
        self.task = np.frombuffer(self._task, dtype=np.int32) if len(self._task) else np.zeros(0, np.int32)
        self.reward = np.frombuffer(self._reward, dtype=np.float64) if len(self._reward) else np.zeros(0, np.float64)

    def read(self, i: int) -> dict[str, Any]:
        """Row ``i`` parsed again from ``path`` (for the few rows a decision needs whole): one ``pread`` of its
        line, so nothing else of the file is read into this process."""
        if self.path is None or i >= len(self._offsets):
            raise LookupError(f"row {i} cannot be read back: the rows were added without their file offsets")
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        start = self._offsets[i]
        end = self._offsets[i + 1] if i + 1 < len(self._offsets) else os.fstat(self._file.fileno()).st_size
        data = os.pread(self._file.fileno(), end - start, start)
        return json.loads(data.split(b"\n", 1)[0])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
