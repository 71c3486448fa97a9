"""Leak-free splits: equal prompts always share a split, deterministically under a seed.

Generated task sets repeat prompts (a small arithmetic space, a template), so splitting by task id
puts the same question in train and in validation. Tasks are grouped instead by their normalised
prompt (``quality.text.prompt_key``: the user turns, NFKC, case, spacing and sentence punctuation
ignored, numbers and math symbols kept) and, when the run's quality chain has ``near_dedup``, by its
near-duplicate clusters of prompts (``near``: same shingles, numbers significant, generous on purpose).

Groups are ordered by a seeded hash of their key. Validation takes whole groups in that order while
taking one brings it closer to ``round(n_tasks * validation_fraction)`` tasks, then test likewise; the
rest go to train. A non-zero fraction gets at least one group and train always keeps one (when there
are at least two groups). The same tasks, prompts and seed always give the same split.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from rollgen.quality.text import MinHasher, prompt_key, prompt_shingles, sorted_set
from rollgen.quality.view import content_text
from rollgen.taskcodes import TaskCodes

__all__ = ["SPLITS", "Groups", "PromptGroups", "assign_splits", "prompt_of", "split_groups", "task_hash"]

SPLITS = ("train", "validation", "test")


def task_hash(task_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:8], "big")


def _user_text(prompt: Any) -> str:
    """The user turns of a message list before the first assistant turn (or a plain string prompt)."""
    if isinstance(prompt, str):
        return prompt
    parts = []
    for m in prompt if isinstance(prompt, list) else []:
        if not isinstance(m, dict) or m.get("role") == "assistant":
            break
        if m.get("role") == "user":
            parts.append(content_text(m.get("content")))
    return "\n".join(parts)


def prompt_of(row: Mapping[str, Any]) -> str | None:
    """The prompt text of a dataset row of any format (``prompt``, ``messages``, or the implicit prompt of
    a DPO ``chosen`` conversation), the user turns only; None when the row has none."""
    for key in ("prompt", "messages", "chosen"):
        if key in row and (key != "chosen" or isinstance(row[key], list)):
            text = _user_text(row[key])
            return text if text.strip() else None
    params = row.get("responses_create_params")  # a NeMo Gym row: its input items (format=nemo_gym)
    if isinstance(params, dict) and isinstance(params.get("input"), (str, list)):
        given = params["input"]
        text = _user_text([{"role": "user", "content": given}] if isinstance(given, str) else given)
        return text if text.strip() else None
    return None


class Groups:
    """Tasks (by code of ``codes``) in prompt groups: ``group_of`` (the group of each code, -1: a task never added),
    ``sizes`` (tasks per group) and ``key(g)``, the group's key (a prompt key in hex, or ``task:<id>`` for a task
    without a prompt), whose seeded hash orders the groups."""

    def __init__(self, codes: TaskCodes, group_of: np.ndarray, roots: np.ndarray, alone: np.ndarray, distinct: int):
        self.codes, self.group_of = codes, group_of
        self._roots, self._alone = roots, alone  # prompt groups: their root key; then one group per task alone
        self.sizes = np.bincount(group_of[group_of >= 0], minlength=len(roots) + len(alone))
        self.distinct_prompts = distinct

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def tasks(self) -> int:
        return int(self.sizes.sum())

    def key(self, g: int) -> str:
        if g < len(self._roots):
            return int(self._roots[g]).to_bytes(8, "little").hex()
        return f"task:{self.codes[int(self._alone[g - len(self._roots)])]}"

    def as_dict(self) -> dict[str, str]:
        """Task id -> group key (for a few tasks: tests, small datasets)."""
        return {self.codes[c]: self.key(int(g)) for c, g in enumerate(self.group_of.tolist()) if g >= 0}


class PromptGroups:
    """One prompt per task in; ``groups()`` out: the tasks' ``Groups`` (equal keys for tasks that must share a split).

    Tasks are coded by ``codes`` (the format stage passes its index's table; a new one by default); per task it keeps
    the prompt's 8-byte key and a state byte, in flat arrays. ``near``: the run's ``near_dedup`` parameters
    (``ngram``, ``threshold``, ``num_perm``, ``seed``, ``scheme``) to also group near-duplicate prompts; one MinHash
    signature is kept per distinct prompt.
    """

    def __init__(self, near: Mapping[str, Any] | None = None, codes: TaskCodes | None = None):
        self.codes = codes if codes is not None else TaskCodes()
        self._key = array("Q")  # per task code: its prompt's key (prompt_key, little-endian)
        self._state = bytearray()  # per task code: 0 not added, 1 a prompt, 2 no prompt (a group of its own)
        self.near = dict(near) if near else None
        self._sigs: dict[int, np.ndarray] = {}
        if self.near:
            self._hasher = MinHasher(int(self.near.get("num_perm", 128)), int(self.near.get("seed", 1)),
                                     str(self.near.get("scheme", "oph")))

    def add(self, task_id: str, prompt: str | None) -> None:
        code = self.codes.code(task_id)
        if code >= len(self._state):
            grow = code + 1 - len(self._state)
            self._state.extend(bytes(grow))
            self._key.frombytes(bytes(8 * grow))
        if self._state[code]:
            return
        if not prompt or not prompt.strip():
            self._state[code] = 2
            return
        key = self._key[code] = int.from_bytes(prompt_key(prompt), "little")
        self._state[code] = 1
        if self.near and key not in self._sigs:
            self._sigs[key] = self._hasher.signature(prompt_shingles(prompt, int(self.near.get("ngram", 5))))

    def groups(self) -> Groups:
        state = np.frombuffer(bytes(self._state), dtype=np.uint8)
        keys = np.frombuffer(self._key, dtype=np.uint64)[:len(state)] if len(state) else np.zeros(0, np.uint64)
        prompted, alone = np.flatnonzero(state == 1), np.flatnonzero(state == 2)
        distinct = sorted_set(keys[prompted])
        root = distinct
        if self.near and len(self._sigs) >= 2:
            from rollgen.quality.lsh import near_groups

            order = np.fromiter(self._sigs, dtype=np.uint64, count=len(self._sigs))
            sigs = self._hasher.densify(np.stack(list(self._sigs.values())))
            merged = order[near_groups(sigs, float(self.near.get("threshold", 0.8)), sigs.shape[1])]
            by_key = np.argsort(order)
            root = merged[by_key][np.searchsorted(order[by_key], distinct)]  # each distinct key's root key
        roots = sorted_set(root)
        group_of = np.full(len(state), -1, dtype=np.int32)
        group_of[prompted] = np.searchsorted(roots, root[np.searchsorted(distinct, keys[prompted])])
        group_of[alone] = len(roots) + np.arange(len(alone))
        return Groups(self.codes, group_of, roots, alone, len(distinct) + len(alone))


def _share(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return max(1, math.floor(n * fraction + 0.5))


def split_groups(sizes: np.ndarray, key: Callable[[int], str], validation_fraction: float, test_fraction: float,
                 seed: int) -> np.ndarray:
    """The split of each group (an index into ``SPLITS``), from the groups' sizes (tasks) and keys: groups in the
    order of ``(task_hash(key, seed), key)``, each to the first asked-for split it brings closer to its share."""
    hashes = np.fromiter((task_hash(key(g), seed) for g in range(len(sizes))), dtype=np.uint64, count=len(sizes))
    order = np.argsort(hashes, kind="stable")
    same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    if len(same):  # equal 64-bit hashes (different keys): by key, as a sort on (hash, key) would
        for run in np.split(same, np.flatnonzero(np.diff(same) != 1) + 1):
            span = order[run[0]:run[-1] + 2]
            order[run[0]:run[-1] + 2] = sorted(span.tolist(), key=key)
    n = int(sizes.sum())
    need = {"validation": _share(n, validation_fraction), "test": _share(n, test_fraction)}
    while n >= 2 and need["validation"] + need["test"] > n - 1:  # train keeps a task: take it from the larger
        need["test" if need["test"] >= need["validation"] and need["test"] > 0 else "validation"] -= 1
    asked = [s for s in ("validation", "test") if need[s] > 0]
    where = np.zeros(len(sizes), dtype=np.int8)
    for g, size in zip(order.tolist(), sizes[order].tolist()):
        name = next((s for s in asked if 0 < need[s] and size < 2 * need[s]), "train")
        if name != "train":
            where[g] = SPLITS.index(name)
            need[name] -= size
    _ensure_each(where, sizes, order, asked)
    return where


def assign_splits(groups: Mapping[str, str] | Iterable[str], validation_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, str]:
    """``{task_id: split}`` for every task. ``groups``: task id -> group key, or task ids alone (each its own
    group; duplicates are one task). ``split_groups`` on ``Groups`` does the same without a dict per task."""
    by_task = dict(groups) if isinstance(groups, Mapping) else {t: t for t in groups}
    keys: dict[str, int] = {}
    group_of = np.array([keys.setdefault(k, len(keys)) for k in by_task.values()], dtype=np.int64)
    names = list(keys)
    where = split_groups(np.bincount(group_of, minlength=len(names)), names.__getitem__, validation_fraction,
                         test_fraction, seed)
    return {t: SPLITS[where[g]] for t, g in zip(by_task, group_of.tolist())}


def _ensure_each(where: np.ndarray, sizes: np.ndarray, order: np.ndarray, asked: list[str]) -> None:
    """With two groups or more: train keeps a group and every asked-for split gets one where there are enough
    (a smallest group moves from a split that has two or more; train takes one from an eval split if it must)."""
    if len(order) < 2:
        where[:] = 0
        return

    def in_split(name: str) -> np.ndarray:
        members = order[where[order] == SPLITS.index(name)]
        return members[np.argsort(sizes[members], kind="stable")]

    for name in ("train", *asked):
        if len(in_split(name)):
            continue
        donor = next((s for s in ("train", *asked) if s != name and len(in_split(s)) >= 2), None)
        if donor is None and name == "train":  # train keeps a group even if an eval split has to give its only one
            donor = max((s for s in asked if len(in_split(s))), key=lambda s: int(sizes[in_split(s)].sum()))
        if donor is not None:
            where[in_split(donor)[0]] = SPLITS.index(name)
