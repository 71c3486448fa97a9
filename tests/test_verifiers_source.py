"""The math verifier's source scorer (``rollgen.verifiers.source``) runs reasoning-gym's scorers through the same
guarded call as ``verifier=reasoning_gym`` (``gymscore.guarded_score``): a reply cannot run code through a
scorer that evaluates it, and plain answers still score."""

from __future__ import annotations

from pathlib import Path

import pytest
import reasoning_gym

from rollgen.records import Rollout, Task
from rollgen.verifiers.gymscore import EVAL_SCORERS, SYMPY_SCORERS, UnsafeAnswer
from rollgen.verifiers.math import MathVerifier
from rollgen.verifiers.source import source_score, source_scorer
from tests.conftest import verify_once


def _task(name: str) -> Task:
    entry = reasoning_gym.create_dataset(name, size=1, seed=3)[0]
    return Task(id=name, prompt=entry["question"], answer=entry["answer"],
                metadata={**entry["metadata"], "source_dataset": name, "question": entry["question"]})


@pytest.mark.parametrize("name", [*EVAL_SCORERS, *SYMPY_SCORERS])
def test_a_reply_cannot_run_code_through_the_source_scorer(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    attack = f"__import__('os').system('touch {marker}')"
    task = _task(name)
    scorer = source_scorer(task)
    assert scorer is not None
    try:
        score = source_score(scorer, attack)
    except Exception as e:  # noqa: BLE001 - refused (UnsafeAnswer) or unreadable as a literal: never run
        assert isinstance(e, (UnsafeAnswer, ValueError, SyntaxError)), repr(e)
        score = 0.0
    assert score < 1.0 and not marker.exists()
    if name in SYMPY_SCORERS:
        with pytest.raises(UnsafeAnswer, match="characters outside plain math"):
            source_score(scorer, attack)
    rollout = Rollout(id=f"{name}#0", task_id=name, repeat=0, messages=[], status="ok",
                      completion=f"The answer is \\boxed{{{attack}}}")
    verdict = verify_once(MathVerifier(MathVerifier.Params(timeout_s=5)), task, rollout)
    assert verdict.reward == 0.0 and not marker.exists()


def test_plain_answers_still_reach_the_scorer() -> None:
    for name in ("n_queens", "polynomial_multiplication"):
        task = _task(name)
        scorer = source_scorer(task)
        assert scorer is not None and source_score(scorer, str(task.answer)) == 1.0, name
    puzzle = _task("puzzle24")
    scorer = source_scorer(puzzle)
    assert scorer is not None
    with pytest.raises(UnsafeAnswer, match="too large"):  # refused before sympy computes it
        scorer("9**9**9**9")
