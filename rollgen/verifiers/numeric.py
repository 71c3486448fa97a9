"""Numbers within a tolerance, and partial credit for answers with several parts."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rollgen.config import Regex
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import Extract, extract_answer, final_answer, gold_answers, normalize_text, parse_number

__all__ = ["NumericTolerance", "PartsMatch"]


class NumericTolerance(Verifier):
    """1.0 when ``|pred - gold| <= max(abs_tol, rel_tol * |gold|)``; with ``partial_credit_rel`` set, the
    reward falls linearly from 1 at the tolerance to 0 at that relative error (reward shaping for RL)."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        abs_tol: float = Field(1e-9, ge=0.0, description="absolute tolerance")
        rel_tol: float = Field(1e-6, ge=0.0, description="relative tolerance, a share of |gold|")
        partial_credit_rel: float | None = Field(None, gt=0.0, description="relative error at which credit reaches 0")

        @model_validator(mode="after")
        def _partial_beyond_tol(self) -> NumericTolerance.Params:
            if self.partial_credit_rel is not None and self.partial_credit_rel <= self.rel_tol:
                raise ValueError("partial_credit_rel must be larger than rel_tol")
            return self

    params: Params
    name = "numeric"
    needs_answer = True

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        p = self.params
        golds = [g for g in (parse_number(s) for s in gold_answers(task.answer)) if g is not None]
        if not golds:
            raise ValueError(f"the gold answer {task.answer!r} is not a number")
        extracted, rule = extract_answer(rollout.completion)
        value = parse_number(extracted) if extracted is not None else None
        details: dict[str, Any] = {"extracted": extracted, "expected": str(task.answer), "rule": rule,
                                   "value": None if value is None else float(value), "decided": value is not None}
        if value is None:
            return Verdict(reward=0.0, details=details, verifier=self.name)
        best = 0.0
        for gold in golds:
            abs_err = abs(float(value - gold))
            rel_err = abs_err / abs(float(gold)) if gold else (0.0 if abs_err == 0 else math.inf)
            within = abs_err <= max(p.abs_tol, p.rel_tol * abs(float(gold)))
            reward = 1.0 if within else 0.0
            if not within and p.partial_credit_rel is not None and rel_err < p.partial_credit_rel:
                reward = 1.0 - (rel_err - p.rel_tol) / (p.partial_credit_rel - p.rel_tol)
            if reward >= best:
                best = reward
                details.update(abs_error=abs_err, rel_error=rel_err if math.isfinite(rel_err) else None,
                               within_tolerance=within)
        return Verdict(reward=max(0.0, min(1.0, best)), details=details, verifier=self.name)


class PartsMatch(Verifier):
    """Partial credit for multi-part answers (``3, 5, 7``; a list of entities): the gold and the extracted
    answer are split on ``separator`` and matched part by part (numbers exactly, text normalised).

    ``mode``: ``f1`` (default, punishes padding with junk parts), ``recall`` (share of gold parts found),
    ``all`` (1 only when the parts are exactly the gold's). ``details``: the parts, ``matched``,
    ``precision``, ``recall``.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        separator: Regex = Field(r",\s+|;\s*|\s+and\s+|\n", description="regex between parts (a bare ',' "
                               "between digits is a thousands separator, so the default wants ', ')")
        mode: Literal["f1", "recall", "all"] = "f1"
        ordered: bool = Field(False, description="compare part i with gold part i")
        extract: Extract = "auto"


    params: Params
    name = "parts"
    needs_answer = True

    def _split(self, s: str) -> list[str]:
        return [x.strip() for x in re.split(self.params.separator, s) if x.strip()]

    @staticmethod
    def _same(a: str, b: str) -> bool:
        x, y = parse_number(a), parse_number(b)
        if x is not None and y is not None:
            return x == y
        return normalize_text(a) == normalize_text(b)

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        answer = task.answer
        gold = gold_answers(answer) if isinstance(answer, (list, tuple)) else self._split(gold_answers(answer)[0])
        extracted, rule = final_answer(rollout.completion, self.params.extract)
        parts = self._split(extracted) if extracted else []
        if self.params.ordered:
            matched = sum(self._same(a, b) for a, b in zip(parts, gold))
        else:
            left, matched = list(gold), 0
            for part in parts:
                hit = next((i for i, g in enumerate(left) if self._same(part, g)), None)
                if hit is not None:
                    left.pop(hit)
                    matched += 1
        precision = matched / len(parts) if parts else 0.0
        recall = matched / len(gold) if gold else 0.0
        mode = self.params.mode
        if mode == "recall":
            reward = recall
        elif mode == "all":
            reward = float(matched == len(gold) == len(parts))
        else:
            reward = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        details = {"extracted": extracted, "expected": gold, "rule": rule, "parts": parts, "matched": matched,
                   "precision": round(precision, 6), "recall": round(recall, 6)}
        return Verdict(reward=reward, details=details, verifier=self.name)
