"""Tool use: the final answer, and (optionally) the calls the model made on the way.

Reward: ``(answer_weight * answer + calls_weight * calls) / (answer_weight + calls_weight)``.

* answer: a gold that reads as a number is compared as one (the value the completion states: ``\\boxed{}``, "the
  answer is", a concluding sentence), within ``max(abs_tol, task.metadata.abs_tol, rel_tol * |gold|)``; any other
  gold (a date, a weekday, a capital) after ``normalize_text`` (case, punctuation, articles, spacing). A list
  of golds means any of them.
* calls: every tool call of the assistant turns (``rollout.messages``). With ``task.metadata.expected_calls``
  (BFCL possible answers, ``rollgen.verifiers.toolcalls``), the expected calls matched by distinct calls made,
  in any order, over ``max(expected, made)``: a missing call and an extra one both cost. Without them, the share
  of calls that name an offered tool with arguments valid against its JSON Schema.

A task with no gold answer is scored on its calls alone (BFCL-style tasks); one with neither cannot be
verified (``verifier_error``). ``details``: ``answer`` (extracted, expected, match), ``calls`` (made, valid,
matched, expected, errors) and the two scores.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import extract_answer, final_answer, gold_answers, normalize_text, parse_number
from rollgen.verifiers.toolcalls import ToolCallError, calls_made, expected_calls, match_calls, parse_call

__all__ = ["ToolUseVerifier"]


class ToolUseVerifier(Verifier):
    """The final answer (numbers within a tolerance, text normalised) and, weighted, the tool calls made."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        answer_weight: float = Field(1.0, ge=0.0, description="weight of the final answer")
        calls_weight: float = Field(0.0, ge=0.0, description="weight of the calls made (0: scored in details only)")
        abs_tol: float = Field(1e-6, ge=0.0, description="absolute tolerance for numbers (a task's "
                                                         "metadata.abs_tol widens it)")
        rel_tol: float = Field(1e-9, ge=0.0, description="relative tolerance for numbers, a share of |gold|")
        calls_key: str = Field("expected_calls", description="the task metadata key of the expected calls")

        @model_validator(mode="after")
        def _some_weight(self) -> ToolUseVerifier.Params:
            if self.answer_weight + self.calls_weight <= 0:
                raise ValueError("answer_weight + calls_weight must be above 0")
            return self

    params: Params
    name = "tool_use"

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        p = self.params
        expected = expected_calls(task.metadata.get(p.calls_key))
        if task.answer is None and not expected:
            raise ValueError(f"task {task.id!r} has neither an answer nor expected calls ({p.calls_key}) to check")
        details: dict[str, Any] = {}
        parts: list[tuple[float, float]] = []
        if task.answer is not None:
            details["answer"] = answer = self._answer(task, rollout.completion)
            details["answer_score"] = float(answer["match"])
            parts.append((p.answer_weight, details["answer_score"]))
            details["decided"] = answer["extracted"] is not None
        details["calls"] = calls = self._calls(task, rollout, expected)
        details["calls_score"] = calls["score"]
        if task.answer is None or p.calls_weight > 0:
            parts.append((p.calls_weight if task.answer is not None else 1.0, calls["score"]))
        total = sum(w for w, _ in parts)
        reward = sum(w * r for w, r in parts) / total if total else 0.0
        return Verdict(reward=min(1.0, max(0.0, reward)), details=details, verifier=self.name)

    def _answer(self, task: Task, completion: str) -> dict[str, Any]:
        golds = gold_answers(task.answer)
        numbers = [n for n in (parse_number(g) for g in golds) if n is not None]
        if numbers and len(numbers) == len(golds):
            extracted, rule = extract_answer(completion)
            value = parse_number(extracted) if extracted is not None else None
            tol = max(self.params.abs_tol, float(task.metadata.get("abs_tol") or 0.0))
            match = value is not None and any(
                abs(float(value - g)) <= max(tol, self.params.rel_tol * abs(float(g))) for g in numbers)
        else:
            extracted, rule = final_answer(completion, "auto")
            match = extracted is not None and bool(normalize_text(extracted)) and \
                normalize_text(extracted) in {normalize_text(g) for g in golds}
        return {"extracted": extracted, "expected": golds[0] if len(golds) == 1 else golds, "rule": rule,
                "match": match}

    def _calls(self, task: Task, rollout: Rollout, expected: list[dict[str, Any]]) -> dict[str, Any]:
        made = calls_made(rollout.messages)
        errors = []
        valid = 0
        for call in made:
            try:
                parse_call({"function": {"name": call.name, "arguments": call.raw}}, task.tools)
                valid += 1
            except ToolCallError as e:
                errors.append(str(e))
        out: dict[str, Any] = {"made": len(made), "valid": valid}
        if expected:
            matched, missed = match_calls(expected, made, task.tools)
            out.update(expected=len(expected), matched=matched, score=matched / max(len(expected), len(made)))
            errors += missed
        else:
            out["score"] = valid / len(made) if made else 1.0
        if errors:
            out["errors"] = errors[:5]
        return out
