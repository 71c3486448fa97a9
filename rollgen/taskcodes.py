"""Task ids as small integer codes, without a Python object per task.

A run of a million rollouts has half a million tasks; a ``dict[str, int]`` from task id to code costs about 150
bytes a task (the key string, the int, the hash slot), a list of the ids another 60. ``TaskCodes`` keeps the ids'
UTF-8 bytes in one buffer with their end offsets, and an open-addressing table of 64-bit hashes and codes in
two flat arrays: about 30 bytes a task plus the id's length. Codes are 0, 1, 2... in the order ids are first
added. A lookup compares the stored text, so two ids whose hashes collide still get different codes.

``TaskFile`` reads a run's tasks.jsonl once into such a table, with per-task columns by code: the byte offset of
each task's line (to read a task back) and, when asked, its gold answer's key and a few metadata values.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from rollgen import jsonl

__all__ = ["ByTask", "TaskCodes", "TaskFile"]

V = TypeVar("V")

_MASK = (1 << 64) - 1


def _hash(task_id: str) -> int:
    return hash(task_id) & _MASK  # the str caches its hash; codes depend on insertion order only


class TaskCodes:
    """Task id -> code, first-added first (``code`` adds, ``get`` only looks up); code -> id (``[code]``)."""

    def __init__(self, ids: Iterable[str] = (), *, hash_fn: Callable[[str], int] = _hash):
        self._hash_fn = hash_fn
        self._text = bytearray()
        self._ends = array("q", [0])  # id k is _text[_ends[k]:_ends[k + 1]]
        self._hashes = array("Q", bytes(8 * 16))
        self._slots = array("i", bytes(4 * 16))  # code + 1 of the id in this slot, 0: empty
        self._last: tuple[str, int] = ("", -1)  # the last id looked up (rows of one task come together)
        for task_id in ids:
            self.code(task_id)

    def __len__(self) -> int:
        return len(self._ends) - 1

    def __getitem__(self, code: int) -> str:
        if not 0 <= code < len(self):
            raise IndexError(f"task code {code} out of range (0..{len(self) - 1})")
        return self._text[self._ends[code]:self._ends[code + 1]].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return (self[k] for k in range(len(self)))

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and self.get(task_id) >= 0

    def _find(self, task_id: str) -> tuple[int, int, int]:
        """(code or -1, the slot where it is or would go, the id's hash)."""
        h = self._hash_fn(task_id) & _MASK
        mask = len(self._slots) - 1
        i = h & mask
        encoded = None
        while slot := self._slots[i]:
            if self._hashes[i] == h:
                code = slot - 1
                if encoded is None:
                    encoded = task_id.encode("utf-8", "surrogatepass")
                if self._text[self._ends[code]:self._ends[code + 1]] == encoded:
                    return code, i, h
            i = (i + 1) & mask
        return -1, i, h

    def get(self, task_id: str) -> int:
        """``task_id``'s code, or -1 when it was never added."""
        if task_id == self._last[0] and self._last[1] >= 0:
            return self._last[1]
        code = self._find(task_id)[0]
        if code >= 0:
            self._last = task_id, code
        return code

    def code(self, task_id: str) -> int:
        """``task_id``'s code, adding it (as the next code) when it is new."""
        if task_id == self._last[0] and self._last[1] >= 0:
            return self._last[1]
        code, i, h = self._find(task_id)
        if code < 0:
            code = len(self)
            self._text += task_id.encode("utf-8", "surrogatepass")
            self._ends.append(len(self._text))
            self._hashes[i], self._slots[i] = h, code + 1
            if 2 * len(self) > len(self._slots):  # keep the table at most half full: short probes
                self._grow()
        self._last = task_id, code
        return code

    def codes(self, task_ids: Iterable[str]) -> np.ndarray:
        """``get`` of each id (-1 for unknown ones), as an int32 column."""
        return np.fromiter((self.get(t) for t in task_ids), dtype=np.int32)

    def _grow(self) -> None:
        slots = np.frombuffer(self._slots, dtype=np.int32)
        used = np.flatnonzero(slots)
        self._place(np.frombuffer(self._hashes, dtype=np.uint64)[used], slots[used], 2 * len(slots))

    def _place(self, h: np.ndarray, s: np.ndarray, size: int) -> None:
        """A new table of ``size`` slots (a power of two) holding hashes ``h`` of codes ``s - 1``."""
        s_order = np.argsort(s, kind="stable")  # earlier codes first
        h, s = h[s_order], s[s_order]
        new_h, new_s = np.zeros(size, np.uint64), np.zeros(size, np.int32)
        pos = (h & np.uint64(size - 1)).astype(np.int64)
        left = np.arange(len(h))
        while len(left):  # each to the first free slot from its home: one contender per slot per round
            _, first = np.unique(pos[left], return_index=True)
            take = left[first]
            placed = take[new_s[pos[take]] == 0]
            new_h[pos[placed]], new_s[pos[placed]] = h[placed], s[placed]
            done = np.zeros(len(h), bool)
            done[placed] = True
            left = left[~done[left]]
            blocked = left[new_s[pos[left]] != 0]
            pos[blocked] = (pos[blocked] + 1) % size
        self._hashes, self._slots = array("Q", new_h.tobytes()), array("i", new_s.tobytes())

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as the ids alone: the hash table holds ``hash(str)``, which differs from process to process (a
        child's table sent to its parent), so it is built again where it is unpickled (in numpy, not id by id)."""
        return {"hash_fn": self._hash_fn, "text": self._text, "ends": self._ends}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._hash_fn, self._text, self._ends = state["hash_fn"], state["text"], state["ends"]
        self._last = ("", -1)
        n = len(self)
        h = np.fromiter((self._hash_fn(self[k]) & _MASK for k in range(n)), dtype=np.uint64, count=n)
        self._place(h, np.arange(1, n + 1, dtype=np.int32), max(16, 1 << (2 * n).bit_length()))

    def nbytes(self) -> int:
        """Bytes held (the id text, its offsets, the hash table)."""
        return (len(self._text) + self._ends.itemsize * len(self._ends) + self._hashes.itemsize * len(self._hashes)
                + self._slots.itemsize * len(self._slots))

    def sorted_codes(self) -> np.ndarray:
        """Codes in the order of their ids sorted as strings."""
        return np.array(sorted(range(len(self)), key=self.__getitem__), dtype=np.int32)


class TaskFile:
    """A run's tasks.jsonl by task code: ``codes`` (first line of each id wins), ``offsets`` (each task's line),
    ``gold`` (``text.answer_key`` of its answer, 0: none; when ``answers``), ``meta`` (code -> the metadata values
    under ``keys``, only for tasks that have one)."""

    def __init__(self, path: os.PathLike[str] | None = None, *, keys: Iterable[str] = (), answers: bool = False):
        from rollgen.quality.text import answer_key

        self.codes = TaskCodes()
        self.offsets = array("q")
        self._gold = array("Q")
        self.meta: dict[int, dict[str, Any]] = {}
        keys = set(keys)
        if path is None:
            return
        for line in jsonl.lines(path):
            row = jsonl.parse(path, line)
            code = self.codes.code(str(row.get("id")))
            if code < len(self.offsets):
                continue  # a repeated id: its first line counts
            self.offsets.append(line.offset)
            if keys and isinstance(m := row.get("metadata"), dict) and (found := {k: m[k] for k in keys if k in m}):
                self.meta[code] = found
            if answers:
                self._gold.append(answer_key(row.get("answer")))

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def gold(self) -> np.ndarray:
        """Per task code: its gold answer's key, 0 when it has none (or answers were not read)."""
        return np.frombuffer(self._gold, dtype=np.uint64) if len(self._gold) else np.zeros(len(self), np.uint64)

    def offset(self, task_id: str) -> int | None:
        code = self.codes.get(task_id)
        return None if code < 0 else self.offsets[code]

    def metadata(self, task_id: str) -> dict[str, Any]:
        """The metadata values read for ``task_id`` ({} when none, or an unknown task)."""
        code = self.codes.get(task_id)
        return self.meta.get(code, {}) if code >= 0 else {}

    def answer_map(self) -> ByTask[int]:
        """Task id -> its gold answer's key, for the tasks that have one."""
        gold = self.gold
        return ByTask(self.codes, lambda code: int(gold[code]) or None, lambda: np.flatnonzero(gold).tolist())

    def metadata_map(self) -> ByTask[dict[str, Any]]:
        """Task id -> the metadata values read, for the tasks that have one."""
        return ByTask(self.codes, self.meta.get, lambda: sorted(self.meta))


class ByTask(Mapping[str, V]):
    """A read-only ``Mapping`` from task id to a per-code value (``value(code)``, None: absent), over ``codes``."""

    def __init__(self, codes: TaskCodes, value: Callable[[int], V | None], present: Callable[[], list[int]]):
        self._codes, self._value, self._present = codes, value, present

    def __getitem__(self, task_id: str) -> V:
        code = self._codes.get(task_id) if isinstance(task_id, str) else -1
        value = self._value(code) if code >= 0 else None
        if value is None:
            raise KeyError(task_id)
        return value

    def __iter__(self) -> Iterator[str]:
        return (self._codes[k] for k in self._present())

    def __len__(self) -> int:
        return len(self._present())
