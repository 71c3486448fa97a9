"""Guards against reward hacking: each catches its case, clean answers pass, and in a run a tripped guard
scores 0 without calling the verifier."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import rollgen
from rollgen import compose
from rollgen.build import build_verifier
from rollgen.config import GuardsConfig
from rollgen.verifiers.guards import Guarded, check
from rollgen.records import Rollout, Task, Verdict
from rollgen.rundir import read_jsonl
from rollgen.verifiers import Verifier
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI

QUESTION = "A farmer has 3 cows and buys 4 more cows at the market.\nHow many cows does the farmer have now?"
TASK = Task(id="t", messages=[{"role": "user", "content": QUESTION}], answer="7")


def trips(completion: str, finish_reason: str = "stop", task: Task = TASK, **cfg: object) -> list[str]:
    r = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=completion, status="ok",
                finish_reason=finish_reason)
    return [g for g, _ in check(GuardsConfig(**cfg), task, r)]


@pytest.mark.parametrize("completion", [
    "\\boxed{7}", "The answer is 7.", "3 + 4 = 7, so the farmer has 7 cows.", "<think>6? or 8?</think>\\boxed{7}",
    "The farmer has 3 cows and buys 4 more cows at the market. 3 + 4 = 7. \\boxed{7}", "\\boxed{\\frac{14}{2}}",
    "Answer: 7 cows", "The answer is 1,000.",
])
def test_clean_answers_trip_nothing(completion: str) -> None:
    assert trips(completion) == []


@pytest.mark.parametrize(("completion", "guard"), [
    ("", "empty"), ("   \n", "empty"), (":", "empty"), ("\\boxed{}", "empty"),
    ("Let's solve this problem step by step.", "empty"), ("<think>it is 7</think>", "empty"),
    (QUESTION, "copied_from_prompt"), (QUESTION.replace("\n", " ") + " Hmm.", "copied_from_prompt"),
    ("The answer is 6 or 7.", "hedging"), ("\\boxed{6} or maybe \\boxed{7}", "hedging"),
    ("\\boxed{5, 6, 7}", "hedging"), ("The answer is probably 7.", "hedging"),
    ("Let me think. " * 400 + "7", "repetition"),
])
def test_each_guard_catches_its_case(completion: str, guard: str) -> None:
    assert guard in trips(completion)


def test_truncated_and_too_long() -> None:
    assert trips("Let me compute 3 + 4 = 7 and then", finish_reason="length") == ["truncated"]
    long = " ".join(f"Step {i}: we add {i} and {i + 1} to get {2 * i + 1}." for i in range(2000)) + " \\boxed{7}"
    assert trips(long) == ["too_long"]
    assert trips(long, max_chars=None) == []


def test_each_guard_can_be_turned_off() -> None:
    assert trips("", empty=False) == []
    assert trips("The answer is 6 or 7.", hedging=False) == []
    assert trips(QUESTION, copied_from_prompt=False) == []
    assert trips("x", finish_reason="length", truncated=False) == []
    assert trips("", enabled=False) == []


@pytest.mark.parametrize("completion", [
    "I am not sure. The answer is somewhere between 5 and 9, likely around 7.",
    "I think the answer is probably 7, but it might be 8.",
    "So the farmer has 7 cows, or maybe 8 if one was already there.",
    "The answer is \\boxed{7}, though it could also be 8.",
    "The answer is none of these or 7.",
    "\\boxed{5} \\boxed{6} \\boxed{7}",
    "First I guess \\boxed{6}. Another option is \\boxed{8}. Finally \\boxed{7}.",
])
def test_hedges_in_prose_and_unused_candidate_boxes_trip_hedging(completion: str) -> None:
    assert "hedging" in trips(completion)


@pytest.mark.parametrize("completion", [
    "The farmer has 3 cows and buys 4, so he has $14{,}916 - 14{,}909 = 7$ cows.",  # thousands separators
    "So the farmer has \\boxed{7} cows. (Check: 3 + 4 = 7.)",
    "The herd is $7 \\times 10^0$ cows, i.e. \\boxed{7}.",
    "He had \\boxed{3} cows, then bought 4 more: 3 + 4 = 7. Therefore, the farmer has 7 cows.",  # intermediate box
    "So the answer is \\boxed{8}.\nWait, that is wrong: 3 + 4 = 7. So the answer is \\boxed{7}.",  # retracted box
    "Between the market and the farm he walks 2 miles. So the farmer has 7 cows now.",
])
def test_thousands_separators_intermediate_and_retracted_boxes_are_not_hedges(completion: str) -> None:
    assert trips(completion) == []


def test_hedging_counts_values_not_digits() -> None:
    big = Task(id="t", prompt="How many?", answer="14916")
    assert trips("The answer is $14{,}916$.", task=big) == []
    assert trips("\\boxed{1.4916 \\times 10^4}", task=big) == []
    assert trips("\\boxed{14,916 or 14,917}", task=big) == ["hedging"]
    mixed = Task(id="t", prompt="How long?", answer="7/2")
    assert trips("It takes 3 1/2 hours.", task=mixed) == []


def test_hedging_allows_multi_part_gold_answers() -> None:
    multi = Task(id="t", prompt="roots?", answer="-2, 3")
    assert trips("\\boxed{-2, 3}", task=multi) == []
    assert trips("\\boxed{-2} and \\boxed{3}", task=multi) == []
    assert trips("\\boxed{-2, 3, 5}", task=multi) == ["hedging"]
    assert trips("The roots are x = -2 or x = 3.", task=multi) == []
    assert trips("\\boxed{-2}\\boxed{3}", task=multi) == []
    assert trips("The roots are x = -2 or x = 3, or maybe 5.", task=multi) == ["hedging"]
    assert trips("The answer is black or white.", task=Task(id="t", prompt="q", answer="black or white")) == []


class Counting(Verifier):
    from pydantic import BaseModel as _B

    class Params(_B):
        pass

    calls = 0

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        Counting.calls += 1
        return Verdict(reward=1.0, verifier="counting")


def test_guarded_verifier_skips_the_verifier_when_a_guard_trips() -> None:
    v = Guarded(Counting(Counting.Params()), GuardsConfig())

    async def main() -> list[Verdict]:
        return [await v.verify(TASK, Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=c, status="ok"))
                for c in ["", "\\boxed{7}"]]

    Counting.calls = 0
    caught, clean = asyncio.run(main())
    assert caught.reward == 0.0 and caught.verifier == "guards" and caught.details["guards"] == ["empty"]
    assert clean.reward == 1.0 and Counting.calls == 1
    assert v.name == "Counting"


def test_guards_are_a_config_group() -> None:
    assert compose([], output_dir="x").guards.enabled is True
    assert compose(["guards=off"], output_dir="x").guards.enabled is False
    cfg = compose(["guards.max_chars=100"], output_dir="x")
    assert build_verifier(cfg.verifier, cfg.guards).guards.max_chars == 100


def test_in_a_run_a_truncated_answer_scores_zero_by_guard(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 3)
    with serve_in_thread(FakeOpenAI(mode="truncated")) as url:  # right answers, but cut off
        for guards, reward in (("default", 0.0), ("off", 1.0)):
            cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                   "progress=false", f"guards={guards}", "reuse_rollouts=false"],
                                  output_dir=str(tmp_path / guards))
            rollgen.run(cfg)
            rows = list(read_jsonl(tmp_path / guards / "rollouts.jsonl"))
            assert [r["reward"] for r in rows] == [reward] * 3 and {r["status"] for r in rows} == {"truncated"}
            if guards == "default":
                assert all(r["verifier"] == "guards" and r["reward_details"]["guards"] == ["truncated"] for r in rows)
