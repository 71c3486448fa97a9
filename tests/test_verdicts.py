"""Group filters' verdicts in compact form: the chain takes a ``{row: Reason}`` dict or ``Verdicts`` alike."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

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


def test_by_group_is_the_dict_of_each_row_its_groups_reason() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, groups = int(rng.integers(0, 60)), int(rng.integers(1, 12))
        cand = np.sort(rng.choice(500, size=n, replace=False)).astype(np.int64)
        group = rng.integers(0, groups, size=n)
        verdict = {int(g): (f"label {g % 3}", f"group {g}") for g in rng.choice(groups, size=int(rng.integers(0, groups + 1)),
                                                                                  replace=False)}
        compact = Verdicts.by_group(cand, group, verdict)
        expected = Verdicts.of({int(i): verdict[int(g)] for i, g in zip(cand, group) if int(g) in verdict})
        assert compact.rows.tolist() == expected.rows.tolist()
        assert [compact.reasons[w] for w in compact.which.tolist()] == [expected.reasons[w] for w in expected.which.tolist()]
        assert compact.reasons == expected.reasons and compact.labels() == expected.labels()  # same table order: same funnel


def test_group_filters_keep_a_reason_per_task_not_per_dropped_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 tasks x 8 rollouts through pass_rate, zero_variance, cap_per_task, kto_balance: the verdicts' reason
    tables grow with the tasks they drop, not with the rows, and the choices are the per-row rules'."""
    from rollgen import quality
    from rollgen.config import QualityConfig
    from rollgen.quality import groupfilters

    rng = np.random.default_rng(3)
    rows, rewards = [], {}
    for t in range(2000):
        for k in range(8):  # tasks that always fail, always pass, pass every other time
            r = [0.0, 1.0, float(k % 2)][t % 3]
            rewards[f"t{t}#{k}"] = r
            rows.append({"id": f"t{t}#{k}", "task_id": f"t{t}", "repeat": k, "status": "ok", "reward": r,
                         "completion": f"task {t} attempt {k} {rng.random()}"})
    src = tmp_path / "rollouts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen: dict[str, Verdicts] = {}
    for cls in (groupfilters.PassRate, groupfilters.ZeroVariance, groupfilters.CapPerTask, groupfilters.KtoBalance):
        def spy(self, cand, rows_, _orig=cls.decide, _name=cls.__name__):  # noqa: ANN001, ANN202
            seen[_name] = _orig(self, cand, rows_)
            return seen[_name]

        monkeypatch.setattr(cls, "decide", spy)
    for chain, filters in ((["pass_rate"], {"pass_rate": {"min": 0.1, "max": 0.9}}), (["zero_variance"], {}),
                           (["cap_per_task"], {"cap_per_task": {"max_per_task": 3}}),
                           (["kto_balance"], {"kto_balance": {"ratio": 2.0}})):
        d = tmp_path / chain[0]
        d.mkdir()
        qc = QualityConfig.model_validate({"chain": chain, "plots": False, "filters": filters})
        quality.curate(qc, src, d / "curated.jsonl", d / "rejected.jsonl")
    for name, v in seen.items():
        assert isinstance(v, Verdicts), name
        assert len(v.reasons) <= 2000 < len(v), (name, len(v.reasons), len(v))
    kept = {d: {json.loads(x)["id"] for x in (tmp_path / d / "curated.jsonl").read_text().splitlines()}
            for d in ("pass_rate", "zero_variance", "cap_per_task", "kto_balance")}
    assert kept["pass_rate"] == kept["zero_variance"] == {i for i in rewards if int(i[1:].split("#")[0]) % 3 == 2}
    assert len(kept["cap_per_task"]) == 2000 * 3
    for t in range(2000):  # the best 3 of each task
        mine = sorted((rewards[i] for i in kept["cap_per_task"] if i.startswith(f"t{t}#")), reverse=True)
        assert mine == sorted((rewards[f"t{t}#{k}"] for k in range(8)), reverse=True)[:3]
    good = sum(rewards[i] == 1.0 for i in kept["kto_balance"])
    assert good == 8000 and len(kept["kto_balance"]) - good == 4000  # ratio 2 : 1, the undesirable surplus dropped
