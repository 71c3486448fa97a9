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
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from rollgen.quality.text import MinHasher, prompt_key, prompt_shingles
from rollgen.quality.view import content_text

__all__ = ["SPLITS", "PromptGroups", "assign_splits", "prompt_of", "task_hash"]

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


class PromptGroups:
    """One prompt per task in; ``groups()`` out: task id -> group key (equal for tasks that must share a split).

    ``near``: the run's ``near_dedup`` parameters (``ngram``, ``threshold``, ``num_perm``, ``seed``,
    ``scheme``) to also group near-duplicate prompts; one MinHash signature is kept per distinct prompt.
    """

    def __init__(self, near: Mapping[str, Any] | None = None):
        self.tasks: dict[str, str] = {}  # task id -> exact key (hex)
        self.near = dict(near) if near else None
        self._sigs: dict[str, np.ndarray] = {}
        if self.near:
            self._hasher = MinHasher(int(self.near.get("num_perm", 128)), int(self.near.get("seed", 1)),
                                     str(self.near.get("scheme", "oph")))

    def add(self, task_id: str, prompt: str | None) -> None:
        if task_id in self.tasks:
            return
        if not prompt or not prompt.strip():
            self.tasks[task_id] = f"task:{task_id}"
            return
        key = self.tasks[task_id] = prompt_key(prompt).hex()
        if self.near and key not in self._sigs:
            self._sigs[key] = self._hasher.signature(prompt_shingles(prompt, int(self.near.get("ngram", 5))))

    def groups(self) -> dict[str, str]:
        if not self.near or len(self._sigs) < 2:
            return dict(self.tasks)
        from rollgen.quality.lsh import near_groups

        keys = list(self._sigs)
        sigs = self._hasher.densify(np.stack([self._sigs[k] for k in keys]))
        root = near_groups(sigs, float(self.near.get("threshold", 0.8)), sigs.shape[1])
        merged = {k: keys[int(r)] for k, r in zip(keys, root.tolist())}
        return {t: merged.get(k, k) for t, k in self.tasks.items()}


def _share(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return max(1, math.floor(n * fraction + 0.5))


def assign_splits(groups: Mapping[str, str] | Iterable[str], validation_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, str]:
    """``{task_id: split}`` for every task. ``groups``: task id -> group key (``PromptGroups.groups()``),
    or task ids alone (each its own group; duplicates are one task)."""
    by_task = dict(groups) if isinstance(groups, Mapping) else {t: t for t in groups}
    members: dict[str, list[str]] = {}
    for task, key in by_task.items():
        members.setdefault(key, []).append(task)
    order = sorted(members, key=lambda k: (task_hash(k, seed), k))
    n = len(by_task)
    need = {"validation": _share(n, validation_fraction), "test": _share(n, test_fraction)}
    while n >= 2 and need["validation"] + need["test"] > n - 1:  # train keeps a task: take it from the larger
        need["test" if need["test"] >= need["validation"] and need["test"] > 0 else "validation"] -= 1
    asked = [s for s in ("validation", "test") if need[s] > 0]
    where: dict[str, str] = {}
    for key in order:
        size = len(members[key])
        where[key] = next((s for s in asked if 0 < need[s] and size < 2 * need[s]), "train")
        if where[key] != "train":
            need[where[key]] -= size
    _ensure_each(where, members, order, asked)
    return {t: where[k] for k, ts in members.items() for t in ts}


def _ensure_each(where: dict[str, str], members: dict[str, list[str]], order: list[str], asked: list[str]) -> None:
    """With two groups or more: train keeps a group and every asked-for split gets one where there are enough
    (a smallest group moves from a split that has two or more; train takes one from an eval split if it must)."""
    if len(order) < 2:
        for key in order:
            where[key] = "train"
        return

    def in_split(name: str) -> list[str]:
        return sorted((k for k in order if where[k] == name), key=lambda k: len(members[k]))

    for name in ("train", *asked):
        if in_split(name):
            continue
        donor = next((s for s in ("train", *asked) if s != name and len(in_split(s)) >= 2), None)
        if donor is None and name == "train":  # train keeps a group even if an eval split has to give its only one
            donor = max((s for s in asked if in_split(s)), key=lambda s: sum(len(members[k]) for k in in_split(s)))
        if donor is not None:
            where[in_split(donor)[0]] = name
