"""Quality filters on crafted rollouts: each drops what it must and keeps what it must; the funnel adds up."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollgen import compose, quality
from rollgen.config import QualityConfig
from rollgen.errors import ConfigError
from rollgen.quality.text import words
from rollgen.rundir import read_jsonl

VOCAB = [f"w{i}" for i in range(2000)]


def roll(task: str, repeat: int = 0, completion: str = "The answer is \\boxed{4}.", reward: float | None = 1.0,
         status: str = "ok", prompt: str | None = None, **extra: Any) -> dict[str, Any]:
    prompt = prompt if prompt is not None else f"Question {task}: what is the value asked for in task {task}?"
    row = {"id": f"{task}#{repeat}", "task_id": task, "repeat": repeat,
           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt},
                        {"role": "assistant", "content": completion}],
           "completion": completion, "reward": reward, "reward_details": {}, "status": status,
           "finish_reason": "stop", "usage": {"prompt_tokens": 20, "completion_tokens": len(completion.split())}}
    row.update(extra)
    return row


def prose(seed: int, n: int = 150) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def curate(tmp_path: Path, rows: list[dict[str, Any]], chain: list[str], tasks: list[dict[str, Any]] | None = None,
           **cfg: Any) -> tuple[quality.Curation, list[dict[str, Any]], list[dict[str, Any]]]:
    src = tmp_path / "rollouts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_file = None
    if tasks is not None:
        task_file = tmp_path / "tasks.jsonl"
        task_file.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    qc = QualityConfig.model_validate({"chain": chain, "plots": False, **cfg})
    result = quality.curate(qc, src, tmp_path / "curated.jsonl", tmp_path / "rejected.jsonl", tasks=task_file)
    return result, list(read_jsonl(tmp_path / "curated.jsonl")), list(read_jsonl(tmp_path / "rejected.jsonl"))


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["rollout"]["id"] if "rollout" in r else r["id"] for r in rows}


def test_words_ignore_case_and_punctuation() -> None:
    assert (words("The answer, is 42!") == words("the answer is 42")).all()
    assert len(words("héllo wörld")) == 2 and len(words("")) == 0
    assert not (words("the answer is 42") == words("the answer is 43")).all()
    assert len(words("6 - 2")) == 3 and not (words("6 - 2") == words("6 + 2")).all()  # math symbols are words


def test_status_drops_failures_and_length_finish(tmp_path: Path) -> None:
    rows = [roll("a"), roll("b", status="error"), roll("c", status="timeout"), roll("d", status="verifier_error"),
            roll("e", status="truncated"), roll("f", finish_reason="length")]
    _, kept, dropped = curate(tmp_path, rows, ["status"])
    assert ids(kept) == {"a#0"}
    assert {r["reason"] for r in dropped} == {"status=error", "status=timeout", "status=verifier_error",
                                             "status=truncated"}
    _, kept, _ = curate(tmp_path, rows, ["status"], filters={"status": {"drop": ["error"]}})
    assert ids(kept) == {"a#0", "c#0", "d#0", "e#0", "f#0"}


def test_reward_bounds_and_criteria(tmp_path: Path) -> None:
    rows = [roll("a", reward=0.8), roll("b", reward=0.79), roll("c", reward=None, status="error"), roll("d", reward=1.0)]
    _, kept, dropped = curate(tmp_path, rows, ["reward"], min_reward_threshold=0.8, filters={"reward": {"max": 0.9}})
    assert ids(kept) == {"a#0"}
    assert {r["rollout"]["id"]: r["reason"] for r in dropped} == {"b#0": "reward < 0.8", "c#0": "no reward",
                                                                  "d#0": "reward > 0.9"}
    rows = [roll("a", reward_details={"format": 1.0, "ok": True}), roll("b", reward_details={"format": 0.5, "ok": True}),
            roll("c", reward_details={"ok": True}), roll("d", reward_details={"format": 1, "ok": False})]
    _, kept, dropped = curate(tmp_path, rows, ["reward"], filters={"reward": {"criteria": {"format": 0.8, "ok": 1}}})
    assert ids(kept) == {"a#0"}
    assert {r["rollout"]["id"]: r["reason"] for r in dropped} == {"b#0": "format < 0.8", "c#0": "format missing",
                                                                  "d#0": "ok < 1"}


def test_length_in_chars_and_tokens(tmp_path: Path) -> None:
    rows = [roll("a", completion=""), roll("b", completion="x" * 50), roll("c", completion="one two three"),
            roll("d", completion="one two three four five six"), roll("e", completion="no usage here at all ok", usage=None),
            roll("f", completion="ok", usage={"prompt_tokens": 999, "completion_tokens": 1})]
    _, kept, dropped = curate(tmp_path, rows, ["length"], filters={"length": {
        "max_chars": 40, "max_tokens": 5, "max_prompt_tokens": 100}})
    assert ids(kept) == {"c#0", "e#0"}
    assert {r["rollout"]["id"]: r["reason"] for r in dropped} == {
        "a#0": "empty completion", "b#0": "too long", "d#0": "too long", "f#0": "prompt too long"}


def test_repetition_drops_loops_only(tmp_path: Path) -> None:
    loop = "so we add one and " * 30
    rows = [roll("a", completion=loop), roll("b", completion=prose(1, 200)), roll("c", completion="yes yes yes yes yes")]
    _, kept, dropped = curate(tmp_path, rows, ["repetition"])
    assert ids(kept) == {"b#0", "c#0"}  # c is too short to judge
    assert dropped[0]["reason"] == "repetitive" and "repeat" in dropped[0]["detail"]


def test_repetition_on_a_batch_of_only_short_replies(tmp_path: Path) -> None:
    rows = [roll(x, completion="Answer: A") for x in "abc"]  # no reply long enough to have an n-gram
    _, kept, dropped = curate(tmp_path, rows, ["repetition"])
    assert ids(kept) == {"a#0", "b#0", "c#0"} and dropped == []


def test_refusal_phrases_near_the_start(tmp_path: Path) -> None:
    rows = [roll("a", completion="I\u2019m sorry, but I can\u2019t help with that request."),
            roll("b", completion="As an AI language model, I cannot do math."),
            roll("c", completion=prose(2, 120) + " i can't help with this one"),
            roll("d", completion="Sure. The answer is \\boxed{3}.")]
    _, kept, _ = curate(tmp_path, rows, ["refusal"])
    assert ids(kept) == {"c#0", "d#0"}


def test_answer_format(tmp_path: Path) -> None:
    rows = [roll("a", completion="so \\boxed{3}"), roll("b", completion="the answer is 3"),
            roll("c", completion="\\boxed{3} and then a long tail of words")]
    _, kept, dropped = curate(tmp_path, rows, ["answer_format"])
    assert ids(kept) == {"a#0", "c#0"} and dropped[0]["reason"] == "no final answer"
    _, kept, _ = curate(tmp_path, rows, ["answer_format"], filters={"answer_format": {"last_chars": 15}})
    assert ids(kept) == {"a#0"}


def test_exact_dedup_keeps_the_best_rewarded(tmp_path: Path) -> None:
    rows = [roll("a", 0, "The answer is 4.", reward=0.5), roll("a", 1, "the ANSWER is 4", reward=1.0),
            roll("a", 2, "I get 5.", reward=0.0), roll("b", 0, "The answer is 4.", reward=1.0)]
    _, kept, dropped = curate(tmp_path, rows, ["exact_dedup"])
    assert ids(kept) == {"a#1", "a#2", "b#0"}  # b has another prompt: not a duplicate of a's answer
    assert dropped[0]["reason"] == "exact duplicate" and "a#1" in dropped[0]["detail"]
    _, kept, _ = curate(tmp_path, rows, ["exact_dedup"], filters={"exact_dedup": {"field": "completion"}})
    assert ids(kept) == {"a#1", "a#2"}  # completion across tasks; b#0 ties a#1 on reward and comes later


def test_prompt_dedup_drops_whole_tasks(tmp_path: Path) -> None:
    same = "What is the capital of France? Answer in one word."
    rows = [roll("a", 0, "Paris", 0.0, prompt=same), roll("a", 1, "Lyon", 0.0, prompt=same),
            roll("b", 0, "Paris", 1.0, prompt=same.upper()), roll("b", 1, "Paris!", 1.0, prompt=same.upper()),
            roll("c", 0, "Rome", 1.0, prompt="What is the capital of Italy?")]
    _, kept, dropped = curate(tmp_path, rows, ["exact_dedup"], filters={"exact_dedup": {"field": "prompt"}})
    assert ids(kept) == {"b#0", "b#1", "c#0"}  # answers to one prompt are not duplicates of each other
    assert all("task b" in r["detail"] for r in dropped)


def _paraphrase(text: str, seed: int, edits: int) -> str:
    rng = random.Random(seed)
    toks = text.split()
    for i in rng.sample(range(len(toks)), edits):
        toks[i] = rng.choice(["indeed", "also", "then", "thus"])
    return " ".join(toks).replace(" w1", ", W1")


@pytest.mark.parametrize("scheme", ["oph", "classic"])
def test_near_dedup_on_paraphrases(tmp_path: Path, scheme: str) -> None:
    base = prose(7, 200)
    rows = [roll("a", 0, base, reward=0.5, prompt="Explain it."),
            roll("b", 0, _paraphrase(base, 1, 1), reward=1.0, prompt="Explain it, please."),
            roll("c", 0, _paraphrase(base, 2, 1), reward=0.0, prompt="Explain it!"),
            roll("d", 0, prose(8, 200), reward=0.2, prompt="Explain it."),
            roll("e", 0, _paraphrase(base, 3, 60), reward=0.9, prompt="Explain something else.")]
    result, kept, dropped = curate(tmp_path, rows, ["exact_dedup", "near_dedup"],
                                   filters={"near_dedup": {"field": "completion", "scheme": scheme}})
    assert ids(kept) == {"b#0", "d#0", "e#0"}  # b is the best-rewarded of {a, b, c}; e changed 30% of its words
    assert {r["reason"] for r in dropped} == {"near duplicate"}
    assert all("rollout b#0" in r["detail"] for r in dropped)
    assert result.funnel[0]["dropped"] == 0 and result.funnel[1]["dropped"] == 2  # none of them is exact


@pytest.mark.parametrize("scheme", ["oph", "classic"])
def test_near_dedup_keeps_short_answers_to_different_prompts(tmp_path: Path, scheme: str) -> None:
    # a dozen words each, differing only in numbers: true Jaccard of the pairs is below 0.5
    rows = [roll(f"t{a}_{b}", 0, f"Let me compute. The answer is \\boxed{{{a + b}}}.",
                 prompt=f"Calculate {a} + {b}.\nPut your final answer within \\boxed{{}}.")
            for a in range(1, 7) for b in range(2, 7)]
    _, kept, _ = curate(tmp_path, rows, ["near_dedup"], filters={"near_dedup": {"scheme": scheme}})
    assert len(kept) == len(rows) == 30


@pytest.mark.parametrize("scheme", ["oph", "classic"])
def test_prompt_near_dedup_on_prompts_shorter_than_a_shingle(tmp_path: Path, scheme: str) -> None:
    rows = [roll(f"t{i}", 0, "ok", prompt=f"Calculate {a} {op} {b}.")
            for i, (a, op, b) in enumerate([(5, "-", 3), (5, "+", 3), (6, "-", 3), (5, "-", 3), (7, "*", 2)])]
    _, kept, dropped = curate(tmp_path, rows, ["near_dedup"], filters={"near_dedup": {"field": "prompt", "scheme": scheme}})
    assert ids(kept) == {"t0#0", "t1#0", "t2#0", "t4#0"}  # only t3 repeats t0; 4 words each, under one 5-gram
    assert "task t0" in dropped[0]["detail"]


def test_near_dedup_threshold_is_respected(tmp_path: Path) -> None:
    base = prose(9, 200)
    rows = [roll("a", 0, base), roll("b", 0, _paraphrase(base, 4, 20), reward=0.5)]
    _, kept, _ = curate(tmp_path, rows, ["near_dedup"], filters={"near_dedup": {"field": "completion", "threshold": 0.95}})
    assert ids(kept) == {"a#0", "b#0"}
    _, kept, _ = curate(tmp_path, rows, ["near_dedup"], filters={"near_dedup": {"field": "completion", "threshold": 0.3}})
    assert ids(kept) == {"a#0"}


def test_decontamination_finds_a_planted_overlap(tmp_path: Path) -> None:
    bench_q = ("Let x be the number of ways to arrange the letters of the word BANANA such that no two "
               "A are adjacent; find x modulo 7.")
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "q1", "question": "Compute the integral of sin x from 0 to pi and then double it twice.", "answer": "8"},
        {"id": "q2", "responses_create_params": {"input": [{"role": "user", "content": bench_q}]},
         "expected_answer": "3"},
        {"id": "q3", "question": "What is two plus two, exactly?", "answer": "4"}]))
    words_13 = bench_q.split()[3:16]  # 13 consecutive words of q2, inside a longer prompt
    twelve = bench_q.split()[3:15]
    rows = [roll("planted", 0, prompt="Consider this. " + " ".join(words_13) + " Show your work."),
            roll("planted", 1, prompt="Consider this. " + " ".join(words_13) + " Show your work."),
            roll("twelve", 0, prompt="Consider this. " + " ".join(twelve) + " Show your work."),
            roll("short", 0, prompt="Quick one: what is TWO plus two exactly? Go."),
            roll("clean", 0, prompt="Compute the derivative of x squared.")]
    result, kept, dropped = curate(tmp_path, rows, ["decontaminate"],
                                   filters={"decontaminate": {"eval_files": [str(bench)]}})
    assert ids(kept) == {"twelve#0", "clean#0"}
    assert {r["reason"] for r in dropped} == {"contaminated_bench"}
    c = result.contamination
    assert c["files"][str(bench)] == {"rows": 3, "too_short": 0, "matched_rows": 2}
    assert {(m["row"], tuple(m["matched"])) for m in c["matches"]} == {("q2", ("planted",)), ("q3", ("short",))}


def test_decontamination_of_completions(tmp_path: Path) -> None:
    bench = tmp_path / "gsm.jsonl"
    solution = "Natalia sold 48 clips in April and half as many clips in May so she sold 72 clips altogether"
    bench.write_text(json.dumps({"id": "g7", "question": solution, "answer": "72"}) + "\n")
    rows = [roll("a", 0, "Recall: " + solution.lower() + "."), roll("a", 1, "She sold 72 clips.")]
    _, kept, _ = curate(tmp_path, rows, ["decontaminate"], filters={"decontaminate": {"eval_files": [str(bench)]}})
    assert ids(kept) == {"a#0", "a#1"}  # prompts only, by default
    result, kept, dropped = curate(tmp_path, rows, ["decontaminate"], filters={"decontaminate": {
        "eval_files": [str(bench)], "field": "prompt_completion"}})
    assert ids(kept) == {"a#1"} and "completion shares a 13-gram" in dropped[0]["detail"]
    assert result.contamination["matches"][0]["matched"] == ["a#0"]


def test_pass_rate_band_and_zero_variance(tmp_path: Path) -> None:
    rows = [roll("never", i, reward=0.0) for i in range(4)] + [roll("always", i, reward=1.0) for i in range(4)] \
        + [roll("mixed", i, reward=float(i % 2)) for i in range(4)] + [roll("alone", 0, reward=0.5)] \
        + [roll("flat", i, reward=0.5) for i in range(3)]
    _, kept, dropped = curate(tmp_path, rows, ["pass_rate"])
    assert {r["task_id"] for r in kept} == {"mixed", "flat"}
    assert {r["reason"] for r in dropped} == {"pass rate < 0.1", "pass rate > 0.9", "too few rewarded rollouts"}
    _, kept, dropped = curate(tmp_path, rows, ["zero_variance"])
    assert {r["task_id"] for r in kept} == {"mixed"}
    assert {r["reason"] for r in dropped} == {"zero variance", "group too small"}


def test_cap_per_task_keeps_the_best(tmp_path: Path) -> None:
    rows = [roll("a", i, f"answer {i}", reward=r) for i, r in enumerate([0.2, 0.9, 0.5, 0.9])] + [roll("b", 0)]
    _, kept, _ = curate(tmp_path, rows, ["cap_per_task"], filters={"cap_per_task": {"max_per_task": 2}})
    assert ids(kept) == {"a#1", "a#3", "b#0"}


def test_stratify_to_target_shares(tmp_path: Path) -> None:
    tasks = [{"id": f"e{i}", "prompt": "p", "metadata": {"difficulty": "easy"}} for i in range(6)] \
        + [{"id": f"h{i}", "prompt": "p", "metadata": {"difficulty": "hard"}} for i in range(2)] \
        + [{"id": "x", "prompt": "p", "metadata": {}}]
    rows = [roll(t["id"]) for t in tasks]
    _, kept, _ = curate(tmp_path, rows, ["stratify"], tasks=tasks, filters={"stratify": {"targets": {"easy": 1, "hard": 1}}})
    assert sorted(r["task_id"][0] for r in kept) == ["e", "e", "h", "h"]  # 'unknown' is not in targets
    _, kept, dropped = curate(tmp_path, rows, ["stratify"], tasks=tasks,
                              filters={"stratify": {"targets": {"easy": 0.75, "hard": 0.25}}})
    assert sorted(r["task_id"][0] for r in kept) == ["e"] * 6 + ["h"] * 2
    assert {r["reason"] for r in dropped} == {"difficulty=unknown not in targets"}
    _, kept, _ = curate(tmp_path, rows, ["stratify"], tasks=tasks)  # empty targets: equal shares of what is there
    assert sorted(r["task_id"][0] for r in kept) == ["e", "h", "x"]


def test_kto_balance(tmp_path: Path) -> None:
    rows = [roll(f"g{i}", reward=1.0) for i in range(6)] + [roll(f"b{i}", reward=0.0) for i in range(2)]
    _, kept, dropped = curate(tmp_path, rows, ["kto_balance"])
    assert sum(r["reward"] == 1.0 for r in kept) == 2 and sum(r["reward"] == 0.0 for r in kept) == 2
    assert {r["reason"] for r in dropped} == {"desirable surplus"}
    _, kept, _ = curate(tmp_path, rows[:6], ["kto_balance"])  # one class only: nothing to balance against
    assert len(kept) == 6


def _mixed_rows(n_tasks: int = 40) -> list[dict[str, Any]]:
    rng = random.Random(5)
    rows = []
    for t in range(n_tasks):
        for rep in range(3):
            kind = rng.random()
            completion = prose(t * 10 + rep, 60)
            if kind < 0.3:  # some exact and some near duplicates of the task's first answer
                completion = prose(t * 10, 60) if kind < 0.15 else _paraphrase(prose(t * 10, 60), rep, 1)
            status = "error" if kind < 0.05 else "ok"
            rows.append(roll(f"t{t}", rep, completion, reward=rng.choice([0.0, 0.5, 1.0]), status=status))
    return rows


def test_funnel_counts_add_up_and_nothing_is_lost(tmp_path: Path) -> None:
    rows = _mixed_rows()
    chain = ["status", "reward", "length", "exact_dedup", "near_dedup", "pass_rate", "cap_per_task"]
    result, kept, dropped = curate(tmp_path, rows, chain, min_reward_threshold=0.5,
                                   filters={"pass_rate": {"min": 0.0, "max": 0.99}, "cap_per_task": {"max_per_task": 1}})
    f = result.funnel
    assert [s["filter"] for s in f] == chain
    assert f[0]["in"] == len(rows) == result.total
    for step, nxt in itertools.pairwise(f):
        assert step["out"] == nxt["in"]
    for step in f:
        assert step["in"] == step["out"] + step["dropped"] == step["out"] + sum(step["reasons"].values())
        assert step["dropped"] == sum(r["filter"] == step["filter"] for r in dropped)
    assert len(kept) == f[-1]["out"] == result.curated and len(dropped) == result.rejected
    assert len(kept) + len(dropped) == len(rows)
    assert sorted(ids(kept) | ids(dropped)) == sorted(r["id"] for r in rows) and not ids(kept) & ids(dropped)
    assert all(f[i]["dropped"] > 0 for i in range(len(chain)) if chain[i] != "length")  # every filter had work
    assert [r["id"] for r in kept] == [r["id"] for r in rows if r["id"] in ids(kept)]  # file order kept
    assert all(r["rollout"] == next(x for x in rows if x["id"] == r["rollout"]["id"]) for r in dropped[:5])


def test_order_decides_which_filter_is_credited(tmp_path: Path) -> None:
    rows = [roll("a", status="error", reward=0.0), roll("b", reward=0.0), roll("c")]
    first, _, _ = curate(tmp_path, rows, ["status", "reward"], min_reward_threshold=0.5)
    second, _, _ = curate(tmp_path, rows, ["reward", "status"], min_reward_threshold=0.5)
    assert [s["dropped"] for s in first.funnel] == [1, 1]
    assert [s["dropped"] for s in second.funnel] == [2, 0]


def test_metrics_distinct_and_duplicates(tmp_path: Path) -> None:
    rows = [roll("a", 0, "red blue green"), roll("a", 1, "red blue green"), roll("b", 0, "red red red", reward=0.0)]
    result, _, _ = curate(tmp_path, rows, ["exact_dedup"])
    m = result.metrics
    assert m["distinct"]["distinct_1"]["all"] == round(3 / 9, 4)  # red, blue, green out of 9 words
    assert m["distinct"]["distinct_1"]["curated"] == round(3 / 6, 4)
    assert m["duplicates"]["exact_rate"] == {"all": round(1 / 3, 4), "curated": 0.0}
    assert m["pass_rate"]["always_solved"] == 1 and m["pass_rate"]["never_solved"] == 1
    assert m["reward"]["histogram"]["all"][-1] == 2 and m["reward"]["curated"]["n"] == 2


def test_empty_rollouts_file(tmp_path: Path) -> None:
    result, kept, dropped = curate(tmp_path, [], ["status", "near_dedup", "pass_rate"])
    assert result.total == 0 and kept == [] and dropped == []
    assert [s["in"] for s in result.funnel] == [0, 0, 0]


@pytest.mark.parametrize("preset", ["default", "sft", "dpo", "rl"])
def test_presets_compose_and_keep_the_seed_threshold(preset: str) -> None:
    cfg = compose([f"quality={preset}", "sampler=sft"], output_dir="x")
    assert cfg.quality.kind == preset and cfg.quality.min_reward_threshold == 0.8 and "reward" in cfg.quality.chain
    cfg = compose([f"quality={preset}", "quality.min_reward_threshold=0.6"], output_dir="x")
    assert cfg.quality.min_reward_threshold == 0.6


@pytest.mark.parametrize(("override", "key"), [
    ("quality.chain=[status,status]", "quality.chain:"),
    ("quality.chain=[status,bogus]", "quality.chain.1:"),
    ("quality.filters.near_dedup.threshold=1.5", "quality.filters.near_dedup.threshold:"),
    ("quality.filters.answer_format.pattern='[a-'", "quality.filters.answer_format.pattern:"),
    ("quality.filters.decontaminate.eval_files=[/no/such/file.jsonl]", "quality.filters.decontaminate.eval_files:"),
    ("quality.filters.pass_rate.min=0.95", "quality.filters.pass_rate:"),
    ("quality.chain=[status]", "quality:"),  # min_reward_threshold 0.8 (sampler=sft) with no reward filter
])
def test_bad_quality_config_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        compose([override], output_dir="x")
    assert any(line.startswith(key) for line in e.value.lines), e.value.lines


def test_public_surface() -> None:
    assert set(quality.__all__) == {"Curation", "curate", "format_funnel"}
    assert all(callable(getattr(quality, name)) for name in quality.__all__)


# ---------------------------------------------------------------- near dedup keeps distinct problems (issue 12.2)

_PLAIN_TOKEN = re.compile(r"[a-z0-9_\x80-\U0010ffff]+|[-+*/=<>^%$\\{}()\[\]|&~#@]")


def plain_jaccard(a: str, b: str, n: int = 5) -> float:
    """Exact Jaccard of word n-gram sets, computed here without rollgen's hashing."""
    def grams(text: str) -> set[tuple[str, ...]]:
        toks = _PLAIN_TOKEN.findall(text.lower())
        return {tuple(toks)} if len(toks) < n else {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def _generated(generator: str, size: int, **options: Any) -> list[dict[str, Any]]:
    import reasoning_gym

    return [{"id": f"{generator}-{i}", "prompt": e["question"] + "\nPut your final answer within \\boxed{}.",
             "answer": str(e["answer"])}
            for i, e in enumerate(reasoning_gym.create_dataset(generator, size=size, seed=42, **options))]


@pytest.mark.parametrize(("generator", "options"), [
    ("basic_arithmetic", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}),
    ("gsm_symbolic", {}),
])
def test_prompt_dedup_never_merges_tasks_whose_gold_answers_differ(tmp_path: Path, generator: str,
                                                                   options: dict[str, Any]) -> None:
    tasks = _generated(generator, 600, **options)
    rng = random.Random(0)
    rows = [roll(t["id"], 0, "The answer is \\boxed{1}.", reward=rng.choice([0.0, 1.0]), prompt=t["prompt"])
            for t in tasks]
    result, kept, dropped = curate(tmp_path, rows, ["exact_dedup", "near_dedup"], tasks=tasks,
                                   filters={"exact_dedup": {"field": "prompt"}, "near_dedup": {"field": "prompt"}})
    by_id = {t["id"]: t for t in tasks}
    assert dropped  # both generators repeat problems: there is something to merge
    for r in dropped:
        gone, kept_task = by_id[r["rollout"]["task_id"]], by_id[r["detail"].rsplit("task ", 1)[1]]
        assert gone["answer"] == kept_task["answer"], (gone["prompt"], kept_task["prompt"])
        if r["filter"] == "near_dedup":
            assert plain_jaccard(gone["prompt"], kept_task["prompt"]) >= 0.8
    assert len(kept) + len(dropped) == len(rows)


def test_prompts_that_differ_in_a_number_are_different_problems(tmp_path: Path) -> None:
    tail = (" Ensure to report the answer as an integer. Do not add commas in the integer answers reported. Show "
            "each step of the working on its own line, check the arithmetic once more at the end, and keep the "
            "explanation short enough for a student in the fourth grade to follow without any help at all.")
    prompts = {"a": "Calculate 5 + 9." + tail, "b": "Calculate -9 + 9." + tail, "c": "calculate 5+9!" + tail,
               "d": "Calculate 5 + 9." + tail.replace("at all.", "whatsoever.")}
    assert plain_jaccard(prompts["b"], prompts["d"]) >= 0.8  # by words alone, -9 + 9 is a near duplicate of 5 + 9
    rows = [roll(t, 0, "ok", reward=r, prompt=p) for (t, p), r in zip(prompts.items(), [0.2, 1.0, 0.5, 0.9])]
    _, kept, dropped = curate(tmp_path, rows, ["near_dedup"], filters={"near_dedup": {"field": "prompt"}})
    assert ids(kept) == {"b#0", "d#0"}  # -9 + 9 stays; a and c are d reworded (same numbers), d has the best reward
    assert {r["rollout"]["task_id"] for r in dropped} == {"a", "c"} and all("task d" in r["detail"] for r in dropped)


def test_different_gold_answers_keep_near_identical_tasks_apart_and_the_funnel_says_so(tmp_path: Path) -> None:
    story = ("Tom has 3 red marbles and 5 blue marbles in a small cloth bag that he carries to school every day "
             "and shows to his friends at lunch, in the yard behind the library, next to the old oak tree where "
             "the younger children play their games until the bell rings and everyone runs back to the classrooms "
             "for the afternoon lessons. What is the {op} of the red and the blue marbles he carries?")
    tasks = [{"id": "sum", "prompt": story.format(op="sum"), "answer": "8"},
             {"id": "product", "prompt": story.format(op="product"), "answer": "15"},
             {"id": "total", "prompt": story.format(op="sum") + " ", "answer": "8"},
             {"id": "twice", "prompt": "Tom has 3 red marbles.", "answer": "3"},
             {"id": "again", "prompt": "Tom has 3 red marbles.", "answer": "4"}]
    rows = [roll(t["id"], 0, "ok", prompt=t["prompt"], reward=1.0 - i / 10) for i, t in enumerate(tasks)]
    result, kept, dropped = curate(tmp_path, rows, ["exact_dedup", "near_dedup"], tasks=tasks,
                                   filters={"exact_dedup": {"field": "prompt"}, "near_dedup": {"field": "prompt"}})
    assert ids(kept) == {"sum#0", "product#0", "twice#0", "again#0"}  # only "total" (same answer) merges
    assert plain_jaccard(tasks[0]["prompt"], tasks[1]["prompt"]) >= 0.8  # near text, different problems
    notes = {f["filter"]: f.get("notes", {}) for f in result.funnel}
    assert notes["exact_dedup"] == {"kept apart: same or near text, different gold answers": 1}
    # near_dedup sees both pairs: product vs sum (near text) and again vs twice (same text, exact_dedup kept both)
    assert notes["near_dedup"] == {"kept apart: same or near text, different gold answers": 2}
    assert "kept apart" in quality.format_funnel(result.funnel, result.total)


@given(seed=st.integers(0, 10_000))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_near_merge_reaches_the_threshold_by_exact_jaccard(tmp_path: Path, seed: int) -> None:
    # 16 permutations: the MinHash estimate is noisy (s.d. ~0.1), so it alone would merge pairs below 0.7
    rng = random.Random(seed)
    base = [rng.choice(VOCAB[:60]) for _ in range(14)]
    texts = []
    for _ in range(12):
        toks = list(base)
        for i in rng.sample(range(len(toks)), rng.randint(0, 4)):
            toks[i] = rng.choice(VOCAB[:60])
        texts.append(" ".join(toks))
    rows = [roll(f"t{i}", 0, text, reward=rng.random()) for i, text in enumerate(texts)]
    d = tmp_path / str(seed)
    d.mkdir(exist_ok=True)  # hypothesis may replay a seed
    _, _, dropped = curate(d, rows, ["near_dedup"],
                           filters={"near_dedup": {"field": "completion", "threshold": 0.7, "num_perm": 16}})
    by_id = {r["id"]: r["completion"] for r in rows}
    for r in dropped:
        other = by_id[r["detail"].rsplit("rollout ", 1)[1]]
        assert plain_jaccard(r["rollout"]["completion"], other) >= 0.7
