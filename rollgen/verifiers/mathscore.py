"""Scoring a math final answer against the gold, in this process: the exact numeric comparison, the verdict of
math-verify, and the veto on answers that only restate the question.

``fast_score`` finds the answer the completion states (``rollgen.verifiers.extract``: a box, "the answer is", a
concluding sentence; never an incidental last number) and, when it and the gold's value are plain numbers or
lists of them, compares them exactly as fractions; a None reward leaves the answer to math-verify, which the
math verifier runs in a worker process. ``score_text`` is the whole check without a worker pool.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rollgen.verifiers.extract import extract_answer, gold_value, parse_number, parse_number_list, restates_question
from rollgen.verifiers.mathverify import equal

__all__ = ["MathOptions", "fast_score", "math_verify_reward", "score_text", "unrestated"]

_DECIMALS = re.compile(r"\.(\d+)")


class MathOptions(BaseModel):
    """math-verify's options, as the math verifier passes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    float_rounding: int = Field(6, ge=0, le=20, description="math-verify: decimal places compared")
    strict: bool = Field(True, description="math-verify: variables must match (f(x) is not f(y))")
    allow_set_relation_comp: bool = Field(True, description="math-verify: an interval equals its inequality "
                                          "(x in [2, 5) and 2 <= x < 5)")

    def verify_options(self) -> dict[str, Any]:
        return {"float_rounding": self.float_rounding, "strict": self.strict,
                "allow_set_relation_comp": self.allow_set_relation_comp}


def _rounded_equal(gold: Fraction, pred: Fraction, pred_text: str, places: int) -> bool:
    """math-verify's rounding for a gold with no exact decimal (1/12): a decimal with at least ``places``
    decimals that agrees with it to ``places`` places (0.0833333 for 1/12) is equal; 0.33 for 1/3 is not."""
    den = gold.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    m = _DECIMALS.search(pred_text)
    return den != 1 and m is not None and len(m.group(1)) >= places and round(gold, places) == round(pred, places)


def fast_score(completion: str, gold: str, question: str | None = None,
               float_rounding: int = 6) -> tuple[float | None, dict[str, Any]]:
    """Extraction and the exact numeric comparison. A None reward means math-verify must decide."""
    extracted, rule = extract_answer(completion, question)
    details: dict[str, Any] = {"extracted": extracted, "expected": gold, "rule": rule, "method": "none"}
    if extracted is None:
        return 0.0, details
    core = gold_value(gold)
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


def math_verify_reward(equal_: bool | None, gold: str) -> float:
    """math-verify's verdict as a reward; ValueError when it could not read the gold."""
    if equal_ is None:
        raise ValueError(f"math-verify cannot parse the gold answer {gold[:200]!r}")
    return float(equal_)


def unrestated(reward: float, details: dict[str, Any], gold: str, question: str | None) -> float:
    """``reward``, or 0 when the answer equals the gold only because it restates the question's own quantity
    (``details["restates_question"]`` says so)."""
    if reward and question and restates_question(details["extracted"], gold_value(gold), question):
        details["restates_question"] = True
        return 0.0
    return reward


def score_text(completion: str, gold: str, *, timeout_s: float | None = None, question: str | None = None,
               **options: Any) -> tuple[float, dict[str, Any]]:
    """Score one completion against a gold answer in this process (no worker pool): ``(reward, details)``.

    ``question``: the task's question, to catch an answer that restates its quantity. ``options``: math-verify's
    ``float_rounding``, ``strict``, ``allow_set_relation_comp`` (defaults as ``MathOptions``).
    ``timeout_s`` bounds the math-verify step with SIGALRM, in the main thread only. Raises ValueError when
    math-verify cannot parse the gold answer, MathVerifyTimeout (a TimeoutError) when it runs out of time.
    """
    opts = MathOptions(**options).verify_options()
    reward, details = fast_score(completion, gold, question, opts["float_rounding"])
    if reward is None:
        reward = math_verify_reward(equal(gold_value(gold), details["extracted"], timeout_s, **opts), gold)
    return unrestated(reward, details, gold, question), details
