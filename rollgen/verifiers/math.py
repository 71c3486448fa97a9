"""Final-answer equivalence for math: find the stated answer, ask the task source's scorer when it has one,
compare numbers exactly, else ask math-verify.

The hot path is pure Python and takes microseconds (``rollgen.verifiers.mathscore``): it finds the answer the
completion states (``rollgen.verifiers.extract``: a box, "the answer is", a concluding sentence; never an
incidental last number) and, when it and the gold answer are plain numbers or lists of them, compares them
exactly as fractions. A task made by a reasoning-gym generator with its own scorer is scored by
that scorer (``rollgen.verifiers.source``: "lowest terms" is part of a fraction task's answer). Anything else
(radicals, sets, intervals, expressions) goes to math-verify in a worker process, with a deadline, so sympy
never blocks the event loop and a runaway parse cannot hang the run.

An answer that equals the gold only because it restates the question's own quantity (``\\frac{6}{8}`` for
"simplify 6/8", ``2^{10}`` for "evaluate 2^{10}") scores 0.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import (
    extract_answer,
    gold_text,
    gold_value,
    parse_number,
    restates_question,
    task_question,
)
from rollgen.verifiers.mathscore import MathOptions, fast_score, math_verify_reward, score_text, unrestated
from rollgen.verifiers.mathverify import MathVerifyTimeout, equal, init_worker, warm_up
from rollgen.verifiers.source import scorer_is_built, source_score, source_scorer
from rollgen.workers import WorkerPool

# extract_answer, parse_number and restates_question are ``rollgen.verifiers.extract``'s; they stay importable
# from here, where callers found them before.
__all__ = ["MathVerifier", "MathVerifyTimeout", "extract_answer", "parse_number", "restates_question", "score_text"]

# Extra time the event loop grants a worker beyond ``timeout_s`` before it declares the worker hung and kills
# it. The worker interrupts itself at ``timeout_s``; this backstop only fires for code that ignores signals.
_HARD_GRACE_S = 5.0


class MathVerifier(Verifier):
    """Reward 1.0 when the completion's final answer equals ``task.answer``, else 0.0.

    ``details``: ``extracted``, ``expected``, ``rule`` (boxed | answer_is | conclusion | short | none) and
    ``method`` (numeric | math_verify | source | none); ``source_score`` when the task source's scorer decided,
    ``restates_question`` when a correct value was only the question's own quantity. A math-verify timeout, a
    crashed worker or an unparseable gold answer raises, so the rollout is marked ``verifier_error`` rather
    than scored 0.
    """

    class Params(MathOptions):
        timeout_s: float = Field(10.0, gt=0, description="per math-verify call, in the worker process")
        workers: int = Field(1, ge=1, description="worker processes for symbolic checks")
        source_scorer: bool = Field(True, description="score a reasoning-gym task with its generator's own "
                                    "score_answer when it has one (it knows 'lowest terms')")

    params: Params
    needs_answer = True

    @property
    def name(self) -> str:
        return "math"

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        gold = gold_text(task.answer)
        question = task_question(task)
        reward, details = fast_score(rollout.completion, gold, question, self.params.float_rounding)
        accepted = None
        if details["extracted"] is not None and self.params.source_scorer:
            accepted = await self._source(task, details)
            if accepted is False:  # the source's own rule says no ("lowest terms"): no value equality overrides it
                return Verdict(reward=0.0, details=details, verifier=self.name)
        if reward is None:
            same = await self._math_verify(gold_value(gold), details["extracted"])
            if same is None and accepted:  # a gold math-verify cannot read: the source's verdict stands
                return Verdict(reward=1.0, details=details, verifier=self.name)
            reward = math_verify_reward(same, gold)
        reward = unrestated(reward, details, gold, question)
        return Verdict(reward=reward, details=details, verifier=self.name)

    async def _source(self, task: Task, details: dict[str, Any]) -> bool | None:
        """Whether the task source's scorer gives the answer its full score; None when the task has no scorer
        or the scorer raised."""
        scorer = source_scorer(task) if scorer_is_built(task) else await asyncio.to_thread(source_scorer, task)
        if scorer is None:
            return None
        try:
            score = source_score(scorer, details["extracted"])
        except Exception as e:  # noqa: BLE001 - a scorer that cannot read the answer leaves it to math-verify
            details["source_error"] = f"{type(e).__name__}: {e}"[:200]
            return None
        details["source_score"] = round(score, 6)
        if score < 1.0:
            details["method"] = "source"
        return score >= 1.0

    async def _math_verify(self, gold: str, pred: str) -> bool | None:
        """math-verify in a worker of the runtime's pool; the worker interrupts itself at ``timeout_s``
        (MathVerifyTimeout), the pool gives up on it ``_HARD_GRACE_S`` later (WorkerHung: a TimeoutError)."""
        timeout_s = self.params.timeout_s
        return await self.pool.call(_equal_call, gold, pred, timeout_s, self.params.verify_options(),
                                    deadline_s=timeout_s + _HARD_GRACE_S)

    @property
    def pool(self) -> WorkerPool:
        """The runtime's math-verify worker pool (its processes start on the first symbolic check)."""
        return self.runtime.pool("math-verify", self.params.workers, initializer=init_worker, warm_up=warm_up)


def _equal_call(gold: str, pred: str, timeout_s: float, options: dict[str, Any]) -> bool | None:
    """``equal`` with its options as one dict (what the worker pool is sent)."""
    return equal(gold, pred, timeout_s, **options)

