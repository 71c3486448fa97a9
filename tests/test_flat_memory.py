"""The compact per-task and per-row state of the stages after collection (issue 18, flat memory)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from rollgen.quality.view import Rows
from rollgen.taskcodes import TaskCodes, TaskFile


def _ids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    odd = ["", "é", "任务", "a\ud800b", "x" * 300, "t1 ", "T1"]  # empty, non-ASCII, a lone surrogate, long, near-equal
    return odd + [f"t{rng.randrange(10**9)}-{i}" for i in range(n)]


def test_every_id_maps_back_to_its_code_in_first_seen_order() -> None:
    ids = _ids(5000)
    codes = TaskCodes()
    got = [codes.code(t) for t in ids + ids[::-1]]  # the second time round every id is known
    assert got[:len(ids)] == list(range(len(ids)))
    assert got[len(ids):] == list(range(len(ids)))[::-1]
    assert len(codes) == len(ids) and list(codes) == ids
    assert all(codes[codes.get(t)] == t for t in ids)
    assert codes.codes(ids[:3]).tolist() == [0, 1, 2]
    assert [codes[int(k)] for k in codes.sorted_codes()] == sorted(ids)


def test_unknown_ids_are_not_added_by_a_lookup() -> None:
    codes = TaskCodes(["a", "b"])
    assert codes.get("c") == -1 and "c" not in codes and "a" in codes and 1 not in codes
    assert codes.codes(["b", "zz", "a"]).tolist() == [1, -1, 0]
    assert len(codes) == 2
    with pytest.raises(IndexError, match="task code 2"):
        codes[2]


@pytest.mark.parametrize("hash_fn", [lambda s: 7, lambda s: len(s), lambda s: (1 << 64) - 1])
def test_colliding_hashes_still_give_distinct_codes(hash_fn) -> None:
    ids = _ids(300, seed=1)
    codes = TaskCodes(hash_fn=hash_fn)  # every id (or many) share a hash: the text decides
    for k, t in enumerate(ids):
        assert codes.code(t) == k
    assert [codes.get(t) for t in ids] == list(range(len(ids)))
    assert codes.get("not there") == -1


def test_the_table_costs_tens_of_bytes_a_task() -> None:
    ids = [f"t{i}" for i in range(100_000)]
    codes = TaskCodes(ids)
    text = sum(len(t) for t in ids)
    assert (codes.nbytes() - text) / len(ids) <= 56  # offsets 8, hash table 24..48 (at most half full)
    assert codes.get("t99999") == 99_999


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_task_file_columns_by_code(tmp_path: Path) -> None:
    path = _write(tmp_path / "tasks.jsonl", [
        {"id": "a", "prompt": "1+1", "answer": "2", "metadata": {"level": 3, "other": 1}},
        {"id": "b", "prompt": "2+2", "metadata": {}},
        {"id": "a", "prompt": "again", "answer": "9", "metadata": {"level": 9}},  # a repeated id: the first counts
        {"id": "c", "prompt": "3+3", "answer": 6},
    ])
    table = TaskFile(path, keys={"level"}, answers=True)
    assert len(table) == 3 and list(table.codes) == ["a", "b", "c"]
    lines = path.read_bytes().split(b"\n")
    assert table.offset("c") == sum(len(x) + 1 for x in lines[:3]) and table.offset("a") == 0
    assert table.offset("nope") is None
    assert table.metadata("a") == {"level": 3} and table.metadata("b") == {} and table.metadata("zz") == {}
    gold = table.answer_map()
    assert set(gold) == {"a", "c"} and len(gold) == 2 and gold.get("b") is None and gold.get("zz", 0) == 0
    assert gold["a"] != gold["c"] and gold["a"] == int(table.gold[0])
    assert dict(table.metadata_map()) == {"a": {"level": 3}}
    assert not TaskFile(path).answer_map()  # answers not asked for: none


def test_rows_keep_no_id_that_can_be_derived(tmp_path: Path) -> None:
    batch = [{"id": "t1#0", "task_id": "t1", "repeat": 0, "completion": "x"},
             {"id": "t1#1", "task_id": "t1", "repeat": 1, "completion": "y"},
             {"id": "custom", "task_id": "t2", "repeat": 0, "completion": "z"},
             {"task_id": "t2", "repeat": 1, "completion": "w"},  # no id: its index
             {"id": "t3#x", "task_id": "t3", "repeat": "x"},  # a repeat that is no int
             {"id": 5, "task_id": "t1", "repeat": True}]  # bool is no repeat
    rows = Rows()
    views = rows.add(batch)
    rows.freeze()
    assert [v.task for v in views] == [0, 0, 1, 1, 2, 0]
    assert [rows.row_id(i) for i in range(len(rows))] == ["t1#0", "t1#1", "custom", "3", "t3#x", "5"]
    assert len(rows._odd_ids) == 4  # the two derivable ids are not stored
    assert rows.task.tolist() == [0, 0, 1, 1, 2, 0] and np.isnan(rows.reward).all()
    assert [rows.task_ids[k] for k in range(len(rows.task_ids))] == ["t1", "t2", "t3"]


def test_band_walk_in_chunks_yields_what_one_pass_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from rollgen.quality import lsh

    rng = np.random.default_rng(3)
    index = lsh.BandIndex(0.8, 128)
    keys = rng.integers(0, 300, size=(3000, index.b)).astype(np.uint64)
    keys[:500] = np.arange(500 * index.b, dtype=np.uint64).reshape(500, index.b) + 10**6  # units with no candidate
    order = rng.permutation(len(keys))
    whole = list(index.walk(keys, order))
    monkeypatch.setattr(lsh, "WALK_CHUNK", 7)
    assert list(index.walk(keys, order)) == whole
    shared = set()
    for band in range(index.b):
        col = keys[order, band].tolist()
        count = {k: col.count(k) for k in set(col)}
        shared |= {u for u, k in enumerate(col) if count[k] > 1}
    assert [u for u, _ in whole] == sorted(shared)  # each unit that shares a band key, once, in order


def test_task_codes_survive_a_pickle_to_another_process(tmp_path: Path) -> None:
    import pickle
    import subprocess
    import sys

    ids = _ids(2000, seed=2)
    path = tmp_path / "codes.pickle"
    path.write_bytes(pickle.dumps(TaskCodes(ids)))
    check = ("import pickle, sys; c = pickle.loads(open(sys.argv[1], 'rb').read()); ids = list(c); "
             "assert all(c.get(t) == k for k, t in enumerate(ids)) and c.get('nope') == -1; "
             "assert c.code('new one') == len(ids); print(len(ids))")
    out = subprocess.run([sys.executable, "-c", check, str(path)], capture_output=True, text=True, check=False,
                         env={"PYTHONHASHSEED": "random", "PYTHONPATH": ":".join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(ids))


def test_band_index_finds_what_a_dict_of_buckets_finds() -> None:
    from rollgen.quality import lsh

    rng = np.random.default_rng(4)
    index = lsh.BandIndex(0.7, 64)
    keys = rng.integers(0, 40, size=(2000, index.b)).astype(np.uint64)
    order = rng.permutation(len(keys))[:1500]
    buckets: dict[int, list[int]] = {}
    steps = 0
    for u, slots in index.walk(keys, order):
        expect = {v for s in slots for v in buckets.get(s, [])}
        assert index.query(slots) == expect
        if u % 3 or not expect:  # insert most units, as dedup inserts those that are no duplicate
            index.insert(u, slots)
            for s in slots:
                buckets.setdefault(s, []).append(u)
        steps += 1
    assert steps > 1000 and sum(map(len, buckets.values())) > steps  # units share slots: the check saw real sets


def test_prompt_groups_are_columns_that_split_like_the_dict_api() -> None:
    from rollgen.formats.split import SPLITS, PromptGroups, assign_splits, split_groups

    codes = TaskCodes()
    groups = PromptGroups(codes=codes)
    prompts = {f"t{i}": (f"What is {i % 7} + 1?" if i % 5 else ("   " if i % 2 else None)) for i in range(60)}
    for task_id, prompt in prompts.items():
        groups.add(task_id, prompt)
        groups.add(task_id, "ignored: a task's first prompt counts")
    g = groups.groups()
    assert list(codes) == list(prompts) and g.tasks == 60
    assert g.distinct_prompts == 7 + 12  # 7 prompts, and 12 tasks without one, each its own group
    assert len(g) == 19 and sorted(g.sizes.tolist()) == [1] * 12 + sorted([len([i for i in range(60) if i % 5 and
                                                                                  i % 7 == k]) for k in range(7)])
    by_task = g.as_dict()
    assert by_task["t0"] == "task:t0" and by_task["t1"] == by_task["t8"] != by_task["t2"]
    where = split_groups(g.sizes, g.key, 0.2, 0.1, seed=3)
    split = {codes[c]: SPLITS[where[k]] for c, k in enumerate(g.group_of.tolist())}
    assert split == assign_splits(by_task, 0.2, 0.1, 3)
    assert {"train", "validation", "test"} == set(split.values())


def test_signature_rows_read_back_while_mapped_pages_are_released(monkeypatch: pytest.MonkeyPatch) -> None:
    from rollgen.quality import lsh
    from rollgen.quality.text import MinHasher

    monkeypatch.setattr(lsh, "RELEASE", 3)  # let the mapped pages go every third read
    hasher = MinHasher(64, 1, "oph")
    store = lsh.SignatureStore(hasher, lsh.BandIndex(0.8, 64))
    raw = np.random.default_rng(5).integers(0, 2**32, size=(3000, 64), dtype=np.uint64).astype(np.uint32)
    for sig in raw:
        store.add(sig)
    sigs, dense = store.signatures(), hasher.densify(raw)
    assert sigs.shape == dense.shape and len(sigs) == len(dense)
    for i in range(0, 3000, 11):
        pick = np.array([i, (7 * i) % 3000, 2999])
        assert (sigs[pick] == dense[pick]).all() and (sigs[i] == dense[i]).all()
    store.close()
