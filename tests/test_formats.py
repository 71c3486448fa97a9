"""Format stage on hand-made run dirs: every format loads with `datasets` and validates; splits never leak;
DPO pairs respect the margin (property test); KTO labels and balance; RL pass rates; the dataset card."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollgen.config import DpoFormat, KtoFormat, RlFormat, SftFormat
from rollgen.formats import build_dataset, write_dataset
from rollgen.formats.pairs import EPS, candidate_pairs
from rollgen.formats.split import assign_splits
from rollgen.formats.validate import validate

CALCULATOR = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}


def _conversation(task: int, repeat: int, answer: str, tools: bool) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": f"Calculate {task} + 1."}]
    if tools:
        call_id = f"call_{task}_{repeat}"
        msgs += [{"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {
                     "name": "calculator", "arguments": json.dumps({"expression": f"{task} + 1"})}}]},
                 {"role": "tool", "tool_call_id": call_id, "content": str(task + 1)}]
    msgs.append({"role": "assistant", "content": answer})
    return msgs


def make_run(root: Path, rewards: dict[int, list[float | None]], *, texts: dict[tuple[int, int], str] | None = None,
             tools: bool = False, curated_only: set[tuple[int, int]] | None = None,
             extra_rollouts: dict[int, list[float]] | None = None) -> Path:
    """A run dir as the engine leaves it: run_config.json, tasks.jsonl, rollouts.jsonl, curated.jsonl.

    ``rewards[task]`` lists the reward of each repeat; ``texts`` overrides a completion's text;
    ``curated_only`` keeps only those (task, repeat) in curated.jsonl; ``extra_rollouts`` adds rollouts
    that quality dropped (they count in RL pass rates, they are not curated).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "run_config.json").write_text(json.dumps({
        "rollgen_version": "0.1.0", "seed": 0, "output_dir": str(root),
        "server": {"_target_": "rollgen.servers.math.MathServer", "data_path": str(root / "tasks.jsonl")},
        "policy": {"_target_": "rollgen.policy.openai.OpenAIPolicy", "model": "fake-model"},
        "verifier": {"_target_": "rollgen.verifiers.math.MathVerifier"},
        "quality": {"kind": "default", "min_reward_threshold": 0.0}}))
    texts = texts or {}
    with open(root / "tasks.jsonl", "w") as t, open(root / "rollouts.jsonl", "w") as r, \
            open(root / "curated.jsonl", "w") as c:
        for task, rs in rewards.items():
            t.write(json.dumps({"id": f"t{task}", "messages": [{"role": "user", "content": f"Calculate {task} + 1."}],
                                "tools": [CALCULATOR] if tools else None, "answer": str(task + 1),
                                "metadata": {"domain": "math", "difficulty": task % 3}}) + "\n")
            all_rewards = [*rs, *(extra_rollouts or {}).get(task, [])]
            for repeat, reward in enumerate(all_rewards):
                answer = task + 1 if reward else task
                text = texts.get((task, repeat), f"Repeat {repeat}: the answer is \\boxed{{{answer}}}.")
                row = {"id": f"t{task}#{repeat}", "task_id": f"t{task}", "repeat": repeat,
                       "messages": _conversation(task, repeat, text, tools), "completion": text, "reward": reward,
                       "status": "ok", "model": "fake-model", "sampling": {"temperature": 0.7, "top_p": 1.0},
                       "config_hash": "c0ffee", "schema_version": 1}
                line = json.dumps(row) + "\n"
                r.write(line)
                if repeat < len(rs) and (curated_only is None or (task, repeat) in curated_only):
                    c.write(line)
    return root / "curated.jsonl"


def _rows(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {f.stem: [json.loads(x) for x in f.read_text().splitlines()] for f in sorted(out.glob("*.jsonl"))}


def _load(out: Path, tmp_path: Path) -> datasets.DatasetDict:
    return datasets.load_dataset("json", data_dir=str(out), cache_dir=str(tmp_path / "hf-cache"))


FORMATS = [
    pytest.param(SftFormat(), id="sft"),
    pytest.param(SftFormat(style="prompt_completion", best_k=2, system_prompt="Be brief."), id="sft-prompt-completion"),
    pytest.param(DpoFormat(), id="dpo-best-vs-worst"),
    pytest.param(DpoFormat(strategy="all_pairs", max_pairs_per_task=3), id="dpo-all-pairs"),
    pytest.param(DpoFormat(strategy="best_vs_random_lower", tool_arguments="string"), id="dpo-random-lower"),
    pytest.param(KtoFormat(balance=True), id="kto-balanced"),
    pytest.param(RlFormat(test_fraction=0.2), id="rl"),
]


@pytest.mark.parametrize("tools", [False, True], ids=["plain", "tools"])
@pytest.mark.parametrize("cfg", FORMATS)
def test_every_format_loads_with_datasets_and_passes_the_validator(tmp_path: Path, cfg: Any, tools: bool) -> None:
    rng = random.Random(7)
    rewards = {i: [rng.choice([0.0, 0.5, 1.0]) for _ in range(4)] for i in range(30)}
    curated = make_run(tmp_path / "run", rewards, tools=tools)
    out = tmp_path / "run" / "dataset"
    summary = build_dataset(cfg, curated, out, seed=3)
    assert summary["rows"] > 0 and summary["splits"]["validation"] > 0

    check = validate(out, cfg.kind)
    assert check.ok, [str(e) for e in check.errors[:5]]
    ds = _load(out, tmp_path)
    assert {name: len(split) for name, split in ds.items()} == {k: v for k, v in summary["splits"].items() if v}
    on_disk = _rows(out)
    first = ds["train"][0]
    assert first == {k: on_disk["train"][0].get(k) for k in first}  # a row reads back as written
    if tools and cfg.kind != "rl":
        assert first["tools"] == [CALCULATOR]
        turns = first.get("messages") or first.get("completion") or first["chosen"]
        call = next(m for m in turns if m.get("tool_calls"))["tool_calls"][0]
        expected = {"expression": f"{first['task_id'][1:]} + 1"}
        args = call["function"]["arguments"]
        assert args == (json.dumps(expected) if cfg.tool_arguments == "string" else expected)
        tool_turn = next(m for m in turns if m["role"] == "tool")
        assert tool_turn["name"] == "calculator" and tool_turn["tool_call_id"] == call["id"]


def test_sft_keeps_the_best_k_distinct_completions_with_a_system_prompt(tmp_path: Path) -> None:
    texts = {(0, 1): "same", (0, 2): "same  ", (0, 3): "other"}
    curated = make_run(tmp_path / "run", {0: [0.0, 1.0, 1.0, 0.5], 1: [0.2]}, texts=texts)
    summary = build_dataset(SftFormat(best_k=2, system_prompt="You are a math tutor.", validation_fraction=0),
                            curated, tmp_path / "ds", seed=0)
    rows = _rows(tmp_path / "ds")["train"]
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
    # t0: repeats 1 and 2 tie at 1.0 but read the same (whitespace aside): 1, then the next best, 3 (0.5)
    assert [r["rollout_id"] for r in by_task["t0"]] == ["t0#1", "t0#3"]
    assert [r["reward"] for r in by_task["t0"]] == [1.0, 0.5]
    assert [r["rollout_id"] for r in by_task["t1"]] == ["t1#0"]
    assert summary["dropped"] == {"duplicate completion in task": 1}
    for r in rows:
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        assert r["messages"][0]["content"] == "You are a math tutor."
        assert "tools" not in r


def test_dpo_strategies_pair_within_a_task(tmp_path: Path) -> None:
    curated = make_run(tmp_path / "run", {0: [0.0, 1.0, 0.5, 0.0, 0.95]})

    def pairs(**kw: Any) -> list[tuple[str, str, float]]:
        out = tmp_path / f"ds-{len(list(tmp_path.iterdir()))}"
        build_dataset(DpoFormat(validation_fraction=0, **kw), curated, out, seed=0)
        return [(r["chosen_id"], r["rejected_id"], r["margin"]) for r in _rows(out).get("train", [])]

    assert pairs() == [("t0#1", "t0#0", 1.0)]  # best vs worst; ties broken by repeat
    every = pairs(strategy="all_pairs")
    assert len(every) == 8  # 1.0 and 0.95 vs 0.5, 0.0, 0.0 (6) + 0.5 vs 0.0, 0.0 (2); never 1.0 vs 0.95 (0.05 < 0.1)
    assert [m for _, _, m in every] == sorted((m for _, _, m in every), reverse=True)
    assert pairs(strategy="all_pairs", max_pairs_per_task=3) == every[:3]
    assert pairs(strategy="all_pairs", min_quality_difference=0.6) == [p for p in every if p[2] >= 0.6]
    lower = pairs(strategy="best_vs_random_lower", max_pairs_per_task=3)
    assert [c for c, _, _ in lower] == ["t0#1"] * 3 and len({r for _, r, _ in lower}) == 3
    assert lower == pairs(strategy="best_vs_random_lower", max_pairs_per_task=3)  # seeded: same again


def test_dpo_random_lower_depends_on_the_seed_only(tmp_path: Path) -> None:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.1, 0.2, 0.3, 0.4] for i in range(20)})
    picks = []
    for seed in (0, 0, 1):
        out = tmp_path / f"ds{len(picks)}"
        build_dataset(DpoFormat(strategy="best_vs_random_lower", validation_fraction=0), curated, out, seed=seed)
        picks.append([r["rejected_id"] for r in _rows(out)["train"]])
    assert picks[0] == picks[1] and picks[0] != picks[2]


def test_dpo_never_pairs_identical_text_or_equal_rewards(tmp_path: Path) -> None:
    # t0: the worst reads like the best (a noisy judge), so best-vs-worst falls back to the next widest pair.
    # t1: equal rewards only. t2: one rollout. t3: a margin below the minimum.
    texts = {(0, 0): "The answer is 1.", (0, 2): "The  answer is 1. "}
    curated = make_run(tmp_path / "run", {0: [1.0, 0.4, 0.0], 1: [1.0, 1.0], 2: [1.0], 3: [0.5, 0.45]}, texts=texts)
    summary = build_dataset(DpoFormat(validation_fraction=0), curated, tmp_path / "ds", seed=0)
    rows = _rows(tmp_path / "ds")["train"]
    assert [(r["chosen_id"], r["rejected_id"]) for r in rows] == [("t0#0", "t0#1")]
    assert summary["dropped"] == {"pair with identical chosen and rejected text": 1,
                                  "task without a qualifying pair": 3}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    groups=st.lists(st.lists(st.tuples(st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 0.9, 1.0]),
                                       st.sampled_from(["a", "b", "c", "d", "a "])), min_size=1, max_size=6),
                    min_size=1, max_size=6),
    margin=st.sampled_from([0.05, 0.1, 0.2, 0.3, 0.5, 1.0]),
    strategy=st.sampled_from(["best_vs_worst", "all_pairs", "best_vs_random_lower"]),
    cap=st.one_of(st.none(), st.integers(1, 4)),
    seed=st.integers(0, 3),
)
def test_dpo_pairs_respect_the_margin_on_random_inputs(groups: list[list[tuple[float, str]]], margin: float,
                                                       strategy: str, cap: int | None, seed: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        rewards = {i: [r for r, _ in g] for i, g in enumerate(groups)}
        texts = {(i, j): text for i, g in enumerate(groups) for j, (_, text) in enumerate(g)}
        curated = make_run(Path(d) / "run", rewards, texts=texts)
        cfg = DpoFormat(min_quality_difference=margin, strategy=strategy, max_pairs_per_task=cap,  # type: ignore[arg-type]
                        validation_fraction=0.3)
        build_dataset(cfg, curated, Path(d) / "ds", seed=seed)
        rows = [r for split in _rows(Path(d) / "ds").values() for r in split]
        per_task: dict[str, int] = {}
        for r in rows:
            assert r["chosen_reward"] - r["rejected_reward"] >= margin - EPS
            assert r["chosen_reward"] > r["rejected_reward"]
            assert abs(r["margin"] - (r["chosen_reward"] - r["rejected_reward"])) < 1e-9
            assert r["chosen"][-1]["content"].strip() != r["rejected"][-1]["content"].strip()
            assert r["chosen_id"] != r["rejected_id"] and r["chosen_id"].split("#")[0] == r["task_id"]
            per_task[r["task_id"]] = per_task.get(r["task_id"], 0) + 1
        limit = cap if cap is not None else (None if strategy == "all_pairs" else 1)
        for i, g in enumerate(groups):
            possible = [(a, b) for a in range(len(g)) for b in range(len(g))
                        if g[a][0] - g[b][0] >= margin - EPS and g[a][0] > g[b][0]
                        and g[a][1].strip() != g[b][1].strip()]
            n = per_task.get(f"t{i}", 0)
            assert n == (len(possible) if limit is None else min(limit, len(possible))), (g, n)
        assert validate(Path(d) / "ds", "dpo", min_margin=margin).ok or not rows


@given(rewards=st.lists(st.floats(0, 1), max_size=8), margin=st.floats(0.01, 1),
       strategy=st.sampled_from(["best_vs_worst", "all_pairs", "best_vs_random_lower"]))
def test_candidate_pairs_are_unique_and_qualify(rewards: list[float], margin: float, strategy: str) -> None:
    pairs = list(candidate_pairs(rewards, margin, strategy, random.Random(0)))  # type: ignore[arg-type]
    assert len(pairs) == len(set(pairs))
    assert all(rewards[c] - rewards[r] >= margin - EPS and rewards[c] > rewards[r] for c, r in pairs)
    qualifying = sum(1 for a in rewards for b in rewards if a > b and a - b >= margin - EPS)
    assert len(pairs) == qualifying


@given(ids=st.lists(st.text(min_size=1, max_size=6), max_size=60), val=st.floats(0, 0.45), test=st.floats(0, 0.45),
       seed=st.integers(0, 5))
def test_split_assigns_every_task_once_deterministically(ids: list[str], val: float, test: float, seed: int) -> None:
    split = assign_splits(ids, val, test, seed)
    assert set(split) == set(ids)
    assert split == assign_splits(list(reversed(ids)), val, test, seed)  # order of arrival does not matter
    n = len(set(ids))
    counts = {s: sum(v == s for v in split.values()) for s in ("train", "validation", "test")}
    if n >= 2:
        assert counts["train"] >= 1
        room = n - 1 >= (val > 0) + (test > 0)  # train keeps one task; then each asked-for split gets one
        for name, frac in (("validation", val), ("test", test)):
            if frac == 0:
                assert counts[name] == 0
            elif room:
                assert 1 <= counts[name] <= max(1, round(n * frac) + 1)


def test_split_never_leaks_a_task_and_follows_the_seed(tmp_path: Path) -> None:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.5, 0.0, 0.7] for i in range(50)})
    cfg = SftFormat(best_k=3, validation_fraction=0.2, test_fraction=0.1)
    assignments = []
    for seed in (11, 11, 12):
        out = tmp_path / f"ds{len(assignments)}"
        summary = build_dataset(cfg, curated, out, seed=seed)
        rows = _rows(out)
        tasks = {name: {r["task_id"] for r in split} for name, split in rows.items()}
        assert not (tasks["train"] & tasks["validation"] or tasks["train"] & tasks["test"]
                    or tasks["validation"] & tasks["test"])
        assert {k: len(v) for k, v in tasks.items()} == {"train": 35, "validation": 10, "test": 5} == summary["tasks"]
        assert all(len(split) == 3 * len(tasks[name]) for name, split in rows.items())  # all of a task's rows together
        assignments.append(tasks)
        assert validate(out, "sft").ok  # the validator's own cross-split check agrees
    assert assignments[0] == assignments[1] and assignments[0] != assignments[2]


def test_validator_catches_a_leak_between_split_files(tmp_path: Path) -> None:
    curated = make_run(tmp_path / "run", {i: [1.0] for i in range(10)})
    out = tmp_path / "ds"
    build_dataset(SftFormat(validation_fraction=0.3), curated, out, seed=0)
    leaked = (out / "train.jsonl").read_text().splitlines()[0]
    with open(out / "validation.jsonl", "a") as f:
        f.write(leaked + "\n")
    n_val = len((out / "validation.jsonl").read_text().splitlines())
    check = validate(out, "sft")
    assert not check.ok
    assert [(p.path.name, p.line) for p in check.errors] == [("validation.jsonl", n_val)]
    assert "also in train.jsonl (line 1)" in check.errors[0].message


def test_kto_labels_ratio_and_balance(tmp_path: Path) -> None:
    rewards = {i: [1.0, 0.0, 0.0, 0.6, 0.2] for i in range(10)}
    curated = make_run(tmp_path / "run", rewards)
    plain = build_dataset(KtoFormat(desirable_threshold=0.6), curated, tmp_path / "a", seed=0)
    assert plain["labels"] == {"desirable": 20, "undesirable": 30, "desirable_ratio": 0.4, "balanced": False,
                               "dropped_to_balance": 0,
                               "suggested_trl_weights": {"desirable_weight": 1.5, "undesirable_weight": 1.0}}
    rows = [r for s in _rows(tmp_path / "a").values() for r in s]
    assert all(r["label"] is (r["reward"] >= 0.6) for r in rows)
    balanced = build_dataset(KtoFormat(desirable_threshold=0.6, balance=True), curated, tmp_path / "b", seed=0)
    rows = [r for s in _rows(tmp_path / "b").values() for r in s]
    assert sum(r["label"] for r in rows) == sum(not r["label"] for r in rows) == 20
    assert balanced["labels"]["desirable_ratio"] == 0.5 and balanced["labels"]["dropped_to_balance"] == 10
    assert "desirable 20, undesirable 20" in (tmp_path / "b" / "README.md").read_text()


def test_rl_rows_carry_ground_truth_verifier_and_collection_difficulty(tmp_path: Path) -> None:
    # t0: continuous rewards; quality kept 2 of 4, but pass rate and variance are over all 4 as collected.
    curated = make_run(tmp_path / "run", {0: [0.25, 0.75], 1: [1.0, 1.0]}, extra_rollouts={0: [1.0, 0.0]})
    build_dataset(RlFormat(validation_fraction=0), curated, tmp_path / "ds", seed=0)
    rows = {r["task_id"]: r for r in _rows(tmp_path / "ds")["train"]}
    t0, t1 = rows["t0"], rows["t1"]
    assert t0["prompt"] == [{"role": "user", "content": "Calculate 0 + 1."}] and t0["ground_truth"] == "1"
    assert t0["verifier"] == {"_target_": "rollgen.verifiers.math.MathVerifier"}
    assert t0["metadata"] == {"domain": "math", "difficulty": 0}
    assert (t0["n_rollouts"], t0["n_passed"], t0["pass_rate"], t0["mean_reward"]) == (4, 1, 0.25, 0.5)
    assert t0["reward_variance"] == pytest.approx(0.15625) and t0["reward_std"] == pytest.approx(0.395285, abs=1e-6)
    assert (t1["pass_rate"], t1["reward_variance"]) == (1.0, 0.0)


def test_card_states_provenance_and_the_folder_loads_by_its_card(tmp_path: Path) -> None:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0] for i in range(10)})
    (tmp_path / "run" / "rejected.jsonl").write_text(
        '{"filter": "length", "reason": "too short", "rollout": {}}\n' * 2 + '{"filter": "near_dedup", "reason": "x"}\n')
    out = tmp_path / "run" / "dataset"
    counts = write_dataset(DpoFormat(license="cc-by-4.0"), curated, out, seed=0)
    assert counts == {"train": 9, "validation": 1}
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-4.0\n")
    for needle in ["| rollgen version | 0.1.0 |", "| collection hash | c0ffee |", "| model | fake-model |",
                   '"temperature": 0.7', "| rollouts | 20 (ok 20) |", "| curated rollouts | 20 |",
                   "| dataset rows | 10 |", "| train | 9 | 9 |", "run config hash", "margin",
                   "| dropped by quality filter `length` | 2 |", "| dropped by quality filter `near_dedup` | 1 |"]:
        assert needle in card, needle
    by_card = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))  # the card's `configs`
    assert {k: len(v) for k, v in by_card.items()} == counts


def test_stale_split_files_go_and_empty_splits_get_no_file(tmp_path: Path) -> None:
    curated = make_run(tmp_path / "run", {i: [1.0] for i in range(5)})
    out = tmp_path / "ds"
    build_dataset(SftFormat(test_fraction=0.2), curated, out, seed=0)
    assert (out / "test.jsonl").is_file()
    counts = write_dataset(SftFormat(validation_fraction=0), curated, out, seed=0)
    assert counts == {"train": 5, "validation": 0}
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "train.jsonl"]
    assert len(_load(out, tmp_path)["train"]) == 5


def test_bad_tool_arguments_leave_the_rollout_out(tmp_path: Path) -> None:
    curated = make_run(tmp_path / "run", {0: [1.0, 0.0], 1: [1.0]}, tools=True)
    lines = curated.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["messages"][1]["tool_calls"][0]["function"]["arguments"] = "{not json"
    curated.write_text("\n".join([json.dumps(bad), *lines[1:]]) + "\n")
    summary = build_dataset(SftFormat(validation_fraction=0), curated, tmp_path / "ds", seed=0)
    assert [r["rollout_id"] for r in _rows(tmp_path / "ds")["train"]] == ["t0#1", "t1#0"]
    assert summary["dropped"] == {"tool-call arguments not a JSON object": 1}
