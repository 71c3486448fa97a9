"""Final-answer equivalence for math: find the stated answer, ask the task source's scorer when it has one,
compare numbers exactly, else ask math-verify.

The hot path is pure Python and takes microseconds: ``rollgen.verifiers.final`` finds the answer the
completion states (a box, "the answer is", a concluding sentence; never an incidental last number) and, when
it and the gold answer are plain numbers or lists of them, they are compared exactly as fractions
(``rollgen.verifiers.numbers``). A task made by a reasoning-gym generator with its own scorer is scored by
that scorer (``rollgen.verifiers.source``: "lowest terms" is part of a fraction task's answer). Anything else
(radicals, sets, intervals, expressions) goes to math-verify in a worker process, with a deadline, so sympy
never blocks the event loop and a runaway parse cannot hang the run.

An answer that equals the gold only because it restates the question's own quantity (``\\frac{6}{8}`` for
"simplify 6/8", ``2^{10}`` for "evaluate 2^{10}") scores 0.
"""

from __future__ import annotations

import asyncio
import re
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import task_question
from rollgen.verifiers.final import boxed_answer, extract_answer, find_final
from rollgen.verifiers.mathverify import MathVerifyTimeout, equal, init_worker, warm_up
from rollgen.verifiers.numbers import parse_number, parse_number_list
from rollgen.verifiers.quantities import restates_question
from rollgen.verifiers.source import scorer_is_built, source_score, source_scorer
from rollgen.verifiers.values import is_prose
from rollgen.workers import WorkerPool

__all__ = ["MathVerifier", "MathVerifyTimeout", "extract_answer", "parse_number", "restates_question", "score_text"]

# Extra time the event loop grants a worker beyond ``timeout_s`` before it declares the worker hung and kills
# it. The worker interrupts itself at ``timeout_s``; this backstop only fires for code that ignores signals.
_HARD_GRACE_S = 5.0
_SOLUTION_CHARS = 80  # a gold answer longer than this, in prose, is a worked solution: its final answer is the gold


# ---------------------------------------------------------------- scoring


def _gold_text(answer: Any) -> str:
    if answer is None:
        raise ValueError("the task has no ground-truth 'answer'")
    return answer if isinstance(answer, str) else str(answer)


def _gold_core(gold: str) -> str:
    """The gold's value: a worked solution's last box group (``\\boxed{2}, \\boxed{3}`` → ``2, 3``) or stated
    final answer, else the text."""
    if "\\boxed" in gold or "\\fbox" in gold:
        found = boxed_answer(gold)
        return found.answer if found is not None and found.answer else gold
    if len(gold) > _SOLUTION_CHARS and is_prose(gold):
        return find_final(gold).answer or gold
    return gold


_DECIMALS = re.compile(r"\.(\d+)")


def _rounded_equal(gold: Fraction, pred: Fraction, pred_text: str, places: int) -> bool:
    """math-verify's rounding for a gold with no exact decimal (1/12): a decimal with at least ``places``
    decimals that agrees with it to ``places`` places (0.0833333 for 1/12) is equal; 0.33 for 1/3 is not."""
    den = gold.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    m = _DECIMALS.search(pred_text)
    return den != 1 and m is not None and len(m.group(1)) >= places and round(gold, places) == round(pred, places)


def _fast_score(completion: str, gold: str, question: str | None = None,
                float_rounding: int = 6) -> tuple[float | None, dict[str, Any]]:
    """Extraction and the exact numeric comparison. A None reward means math-verify must decide."""
    extracted, rule = extract_answer(completion, question)
    details: dict[str, Any] = {"extracted": extracted, "expected": gold, "rule": rule, "method": "none"}
    if extracted is None:
        return 0.0, details
    core = _gold_core(gold)
    gold_num, pred_num = parse_number(core), parse_number(extracted)
    if gold_num is not None and pred_num is not None:
        details["method"] = "numeric"
        same = gold_num == pred_num or _rounded_equal(gold_num, pred_num, extracted, float_rounding)
        return float(same), details
    gold_list, pred_list = parse_number_list(core), parse_number_list(extracted)
    if gold_list is not None and pred_list is not None:
        details["method"] = "numeric"  # several numbers ("6, 7, 9", "7 or 8") never equal one number
        return float(gold_list.same(pred_list)), details
    if gold_num is not None and not any(c.isdigit() for c in extracted):
        details["method"] = "numeric"  # "???", "\\infty": no digit is never a plain number
        return 0.0, details
    details["method"] = "math_verify"
    return None, details


def _finish(equal_: bool | None, gold: str) -> float:
    if equal_ is None:
        raise ValueError(f"math-verify cannot parse the gold answer {gold[:200]!r}")
    return float(equal_)


def _unrestated(reward: float, details: dict[str, Any], gold: str, question: str | None) -> float:
    if reward and question and restates_question(details["extracted"], _gold_core(gold), question):
        details["restates_question"] = True
        return 0.0
    return reward


def score_text(completion: str, gold: str, *, timeout_s: float | None = None, question: str | None = None,
               **options: Any) -> tuple[float, dict[str, Any]]:
    """Score one completion against a gold answer in this process (no worker pool): ``(reward, details)``.

    ``question``: the task's question, to catch an answer that restates its quantity. ``options``: math-verify's
    ``float_rounding``, ``strict``, ``allow_set_relation_comp`` (defaults as ``MathVerifier.Params``).
    ``timeout_s`` bounds the math-verify step with SIGALRM, in the main thread only. Raises ValueError when
    math-verify cannot parse the gold answer, MathVerifyTimeout (a TimeoutError) when it runs out of time.
    """
    opts = MathVerifier.Params(**options).verify_options()
    reward, details = _fast_score(completion, gold, question, opts["float_rounding"])
    if reward is None:
        reward = _finish(equal(_gold_core(gold), details["extracted"], timeout_s, **opts), gold)
    return _unrestated(reward, details, gold, question), details


class MathVerifier(Verifier):
    """Reward 1.0 when the completion's final answer equals ``task.answer``, else 0.0.

    ``details``: ``extracted``, ``expected``, ``rule`` (boxed | answer_is | conclusion | short | none) and
    ``method`` (numeric | math_verify | source | none); ``source_score`` when the task source's scorer decided,
    ``restates_question`` when a correct value was only the question's own quantity. A math-verify timeout, a
    crashed worker or an unparseable gold answer raises, so the rollout is marked ``verifier_error`` rather
    than scored 0.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        timeout_s: float = Field(10.0, gt=0, description="per math-verify call, in the worker process")
        workers: int = Field(1, ge=1, description="worker processes for symbolic checks")
        source_scorer: bool = Field(True, description="score a reasoning-gym task with its generator's own "
                                    "score_answer when it has one (it knows 'lowest terms')")
        float_rounding: int = Field(6, ge=0, le=20, description="math-verify: decimal places compared")
        strict: bool = Field(True, description="math-verify: variables must match (f(x) is not f(y))")
        allow_set_relation_comp: bool = Field(True, description="math-verify: an interval equals its inequality "
                                              "(x in [2, 5) and 2 <= x < 5)")

        def verify_options(self) -> dict[str, Any]:
            return {"float_rounding": self.float_rounding, "strict": self.strict,
                    "allow_set_relation_comp": self.allow_set_relation_comp}

    params: Params
    needs_answer = True

    @property
    def name(self) -> str:
        return "math"

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        gold = _gold_text(task.answer)
        question = task_question(task)
        reward, details = _fast_score(rollout.completion, gold, question, self.params.float_rounding)
        accepted = None
        if details["extracted"] is not None and self.params.source_scorer:
            accepted = await self._source(task, details)
            if accepted is False:  # the source's own rule says no ("lowest terms"): no value equality overrides it
                return Verdict(reward=0.0, details=details, verifier=self.name)
        if reward is None:
            same = await self._math_verify(_gold_core(gold), details["extracted"])
            if same is None and accepted:  # a gold math-verify cannot read: the source's verdict stands
                return Verdict(reward=1.0, details=details, verifier=self.name)
            reward = _finish(same, gold)
        reward = _unrestated(reward, details, gold, question)
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

