"""Group filters' verdicts in compact form: the chain takes a ``{row: Reason}`` dict or ``Verdicts`` alike."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from rollgen.quality.chain import run_chain
from rollgen.quality.registry import GroupFilter, Verdicts
from rollgen.quality.view import Rows


def test_verdicts_of_a_dict_keeps_every_row_and_shares_equal_reasons() -> None:
    drops = {5: ("dup", "same as 1"), 2: ("dup", "same as 1"), 9: ("band", "task t3"), 7: ("dup", "same as 4")}
    v = Verdicts.of(drops)
    assert v.rows.tolist() == [5, 2, 9, 7]
    assert [v.reasons[w] for w in v.which.tolist()] == list(drops.values())
    assert len(v.reasons) == 3 and v.labels() == {"dup": 3, "band": 1}
    assert Verdicts.of(v) is v and len(Verdicts.of({})) == 0 and Verdicts.of({}).labels() == {}


class _DropOdd(GroupFilter):
    """Drops the odd rows, as a dict or as ``Verdicts``."""

    def __init__(self, compact: bool):
        super().__init__()
        self.compact = compact

    def decide(self, cand: np.ndarray, rows: Rows) -> dict[int, tuple[str, str]] | Verdicts:
        odd = cand[cand % 2 == 1]
        if self.compact:
            return Verdicts(odd, (odd % 3).astype(np.int64), [("odd", f"rest {k}") for k in range(3)])
        return {int(i): ("odd", f"rest {i % 3}") for i in odd}


def test_the_chain_writes_the_same_files_from_either_form(tmp_path: Path) -> None:
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps({"id": f"t{i}#0", "task_id": f"t{i}", "status": "ok", "reward": 1.0,
                                            "completion": f"answer {i}"}) + "\n" for i in range(40)))
    out = {}
    for compact in (False, True):
        d = tmp_path / str(compact)
        d.mkdir()
        _, dropped_by, funnel = run_chain([("odd", _DropOdd(compact))], rollouts, d / "c.jsonl", d / "r.jsonl", [])
        out[compact] = ((d / "c.jsonl").read_bytes(), (d / "r.jsonl").read_bytes(), dropped_by.tolist(), funnel)
    assert out[False] == out[True]
    rejected = [json.loads(x) for x in out[True][1].splitlines()]
    assert len(rejected) == 20 and {r["detail"] for r in rejected} == {"rest 0", "rest 1", "rest 2"}
    assert out[True][3] == [{"filter": "odd", "in": 40, "out": 20, "dropped": 20, "reasons": {"odd": 20}}]


def test_the_card_counts_drops_from_the_funnel_as_it_would_from_rejected_jsonl(tmp_path: Path) -> None:
    import rollgen
    from rollgen.formats.card import provenance
    from rollgen.formats.source import Source
    from tests.conftest import serve_in_thread, write_arith_tasks
    from tests.fakes import FakeOpenAI

    tasks = write_arith_tasks(tmp_path / "t.jsonl", 120)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, varied=True)) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
                               "sampler.num_repeats=3", "sampler=sft"], output_dir=str(tmp_path / "run"))
        report = rollgen.run(cfg)
    run = tmp_path / "run"
    src = Source.of_run(run / "curated.jsonl")
    counted = provenance(src, 0)["rejected_by_filter"]  # read from rejected.jsonl
    given = provenance(replace(src, rejected={f["filter"]: f["dropped"] for f in report["funnel"]}), 0)
    assert counted == given["rejected_by_filter"]
    assert sum(counted.values()) == len((run / "rejected.jsonl").read_text().splitlines()) > 0
    assert list(counted) == [f["filter"] for f in report["funnel"] if f["dropped"]]  # in chain order
    assert "| dropped by quality filter `reward` |" in (run / "dataset" / "README.md").read_text()
