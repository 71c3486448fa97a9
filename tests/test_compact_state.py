"""Per-rollout state after collection is kept in flat arrays; what it gives back is what the plain structures gave."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rollgen.formats.source import Entry, RolloutIndex
from rollgen.metrics import PassCurves, _curves


def test_pass_curves_group_by_task_in_first_seen_order() -> None:
    rng = random.Random(3)
    curves, plain = PassCurves(), {}
    for _ in range(3000):
        task, answer, ok = f"t{rng.randint(0, 400)}", rng.choice([None, "1", "2", 3, {"x": 1}]), rng.random() < 0.4
        curves.add(task, answer, ok)
        plain.setdefault(task, []).append((answer, ok))
    expect = _curves(min(len(v) for v in plain.values()),
                     ([(None if a is None else PassCurves._code(a), ok) for a, ok in v] for v in plain.values()),
                     len(plain))
    assert curves.curves() == expect  # the same sums in the same order: equal floats, not just close
    assert PassCurves().curves() == {"pass@k": {}, "maj@k": {}}
    values, ends = curves._sorted()  # groups are made a chunk of tasks at a time: any chunk gives the same groups
    assert list(curves._groups(values, ends, chunk=1)) == list(curves._groups(values, ends, chunk=7)) == [
        [PassCurves._code(a) << 1 | ok for a, ok in v] for v in plain.values()]
    coded = PassCurves()  # the caller's own codes, some never used (tasks without a verified rollout)
    for i, (task, v) in enumerate(plain.items()):
        for a, ok in v:
            coded.add(task, a, ok, 3 * i + 1)
    assert coded.curves() == expect


def test_rollout_index_gives_back_each_rollout_as_read(tmp_path: Path) -> None:
    rows = [{"task_id": "b", "reward": 1, "repeat": 0}, {"task_id": "a", "reward": None, "repeat": 1},
            {"task_id": "b", "reward": 0.5, "repeat": 2}, {"task_id": "a", "reward": True},
            {"task_id": "b", "reward": 0.0, "repeat": 3}]
    path = tmp_path / "curated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    offsets = [0]
    for r in rows[:-1]:
        offsets.append(offsets[-1] + len(json.dumps(r)) + 1)
    index = RolloutIndex(path)
    assert len(index) == 5 and index.task_ids() == ["a", "b"]
    assert index.entries("a") == [Entry(None, 1, offsets[1]), Entry(True, 0, offsets[3])]
    b = index.entries("b")
    assert b == [Entry(1, 0, offsets[0]), Entry(0.5, 2, offsets[2]), Entry(0.0, 3, offsets[4])]
    assert [type(e.reward) for e in b] == [int, float, float]  # rows carry the reward as it was written
