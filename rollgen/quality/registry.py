"""The quality filters by name (``quality.chain``), and the two kinds a filter is.

* ``RowFilter``: judges one rollout at a time in pass 1 (``check(view) -> Reason | None``);
* ``GroupFilter``: decides after pass 1 on the rows still alive at its turn (``decide(cand, rows)``); one
  that needs to see rows in pass 1 (dedup hashes them) says so with ``observes = True`` and ``observe(view)``.

A filter module registers each class under its chain name (``@FILTERS.register("status")``);
``make(name, cfg, inputs)`` builds it from ``quality.filters.<name>`` (``from_config`` when a filter needs
more than its own parameters). An unknown name is an error naming the registered ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rollgen.config import QualityConfig
from rollgen.quality.view import Reason, Rows, RowView
from rollgen.registry import Registry

__all__ = ["FILTERS", "Filter", "GroupFilter", "Inputs", "RowFilter", "Verdicts", "make"]


@dataclass(frozen=True)
class Inputs:
    """What some filters need beyond their parameters: the run's task metadata and gold-answer keys."""

    task_meta: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    answers: Mapping[str, int] | None = None


class Filter:
    """A filter built from its parameters (``quality.filters.<name>``)."""

    @classmethod
    def from_config(cls, params: Any, cfg: QualityConfig, inputs: Inputs) -> Filter:
        return cls(params)  # type: ignore[call-arg]


class RowFilter(Filter):
    """Judges each row in pass 1, in chain order, until one drops it."""

    def check(self, v: RowView) -> Reason | None:
        raise NotImplementedError


@dataclass
class Verdicts:
    """The rows a group filter drops, compactly: ``rows`` (row indices), and for each the place of its reason in
    ``reasons`` (``which``). A million rows dropped for a few hundred distinct reasons is two arrays, not a million
    dict entries and tuples. ``decide`` may return this or a plain ``{row: Reason}`` dict (``of`` converts it)."""

    rows: np.ndarray
    which: np.ndarray
    reasons: list[Reason]

    @classmethod
    def of(cls, drops: dict[int, Reason] | Verdicts) -> Verdicts:
        if isinstance(drops, Verdicts):
            return drops
        table: dict[Reason, int] = {}
        which = [table.setdefault(r, len(table)) for r in drops.values()]
        return cls(np.fromiter(drops, dtype=np.int64, count=len(drops)), np.array(which, dtype=np.int64), list(table))

    @classmethod
    def none(cls) -> Verdicts:
        """No row dropped."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), [])

    @classmethod
    def by_group(cls, cand: np.ndarray, group: np.ndarray, verdict: dict[int, Reason]) -> Verdicts:
        """The rows of ``cand`` whose group (``group[i]`` for ``cand[i]``) has a reason in ``verdict``, in ``cand``'s
        order, with one table entry per dropping group, in the order of its first row (as ``of`` would list them)."""
        if not verdict or not len(cand):
            return cls.none()
        keys = np.fromiter(verdict, dtype=np.int64, count=len(verdict))
        slot = np.full(int(max(group.max(), keys.max())) + 1, -1, dtype=np.int64)
        slot[keys] = np.arange(len(keys))
        which = slot[group]
        hit = which >= 0
        which = which[hit]
        firsts = np.unique(which, return_index=True)
        order = firsts[0][np.argsort(firsts[1], kind="stable")]  # table slots by their first row
        renumber = np.empty(len(keys), dtype=np.int64)
        renumber[order] = np.arange(len(order))
        reasons = list(verdict.values())
        return cls(cand[hit].astype(np.int64), renumber[which], [reasons[k] for k in order.tolist()])

    def __len__(self) -> int:
        return len(self.rows)

    def labels(self) -> Counter[str]:
        """How many rows each reason's label drops."""
        counts = np.bincount(self.which, minlength=len(self.reasons)) if len(self.rows) else []
        out: Counter[str] = Counter()
        for (label, _), n in zip(self.reasons, counts):
            if n:
                out[label] += int(n)
        return out


class GroupFilter(Filter):
    """Decides on groups of rows after pass 1; ``notes`` count what it saw but did not drop."""

    observes: ClassVar[bool] = False  # True: ``observe`` sees every row that reaches it in pass 1

    def __init__(self) -> None:
        self.notes: Counter[str] = Counter()

    def observe(self, v: RowView) -> None:
        """Pass 1: look at a row still alive at this filter's place in the chain (``observes`` filters)."""

    def decide(self, cand: np.ndarray, rows: Rows) -> dict[int, Reason] | Verdicts:
        raise NotImplementedError


FILTERS: Registry[type[Filter]] = Registry("quality filter")


def make(name: str, cfg: QualityConfig, inputs: Inputs) -> Filter:
    """The filter ``name`` of ``quality.chain``, built from ``cfg.filters.<name>``."""
    cls = FILTERS[name]
    if not issubclass(cls, (RowFilter, GroupFilter)):
        raise TypeError(f"quality filter {name!r} ({cls.__qualname__}) is neither a RowFilter nor a GroupFilter")
    return cls.from_config(getattr(cfg.filters, name), cfg, inputs)
