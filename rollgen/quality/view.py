"""One rollout row as filters see it: the raw dict plus text features computed once, on first use."""

from __future__ import annotations

import math
from array import array
from functools import cached_property
from typing import Any

import numpy as np

from rollgen.quality.text import words

__all__ = ["Reason", "RowView", "Rows", "content_text", "prompt_text"]

Reason = tuple[str, str]  # (label counted in the funnel, detail for rejected.jsonl)


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


class RowView:
    """``row`` with ``index`` (line order), ``task`` (a small int per task id) and lazy text features."""

    def __init__(self, row: dict[str, Any], index: int, task: int):
        self.row, self.index, self.task = row, index, task

    @property
    def reward(self) -> float:
        r = self.row.get("reward")
        return float(r) if isinstance(r, (int, float)) else math.nan

    @cached_property
    def completion(self) -> str:
        c = self.row.get("completion")
        return c if isinstance(c, str) else ""

    @cached_property
    def prompt(self) -> str:
        return prompt_text(self.row.get("messages"))

    @cached_property
    def completion_words(self) -> np.ndarray:
        return words(self.completion)

    @cached_property
    def prompt_words(self) -> np.ndarray:
        return words(self.prompt)

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
    """Columns of every row, filled in the first pass: ids, task codes, rewards (NaN when none)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.task_ids: list[str] = []  # task code -> task id
        self._codes: dict[str, int] = {}
        self._task = array("i")
        self._reward = array("d")
        self.task = np.zeros(0, dtype=np.int32)
        self.reward = np.zeros(0, dtype=np.float64)

    def add(self, row: dict[str, Any]) -> RowView:
        task_id = str(row.get("task_id", ""))
        code = self._codes.get(task_id)
        if code is None:
            code = self._codes[task_id] = len(self.task_ids)
            self.task_ids.append(task_id)
        view = RowView(row, len(self.ids), code)
        self.ids.append(str(row.get("id", view.index)))
        self._task.append(code)
        self._reward.append(view.reward)
        return view

    def __len__(self) -> int:
        return len(self.ids)

    def freeze(self) -> None:
        """Turn the appended columns into numpy arrays for the decisions."""
        self.task = np.array(self._task, dtype=np.int32)
        self.reward = np.array(self._reward, dtype=np.float64)
