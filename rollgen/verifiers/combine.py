"""Composition: several verifiers, one reward. The parts are listed as ``_target_`` dicts
(``rollgen.verifiers.spec.VerifierSpec``); each part's verdict is kept in ``details["criteria"]``.

* ``Cascade``: try the stages in order; stop at the first that decides. Cheap rules first, the LLM judge
  only when they cannot decide (``escalate: undecided``), or also when they reject
  (``escalate: not_accepted``: a judge fallback that recovers the rules' false negatives).
  ``details["decided_by"]`` records which stage gave the reward, for cost analysis.
* ``WeightedSum``: ``sum(w_i * r_i) / sum(w_i)``; ``gate``: if the first part scores below it, the reward
  is 0 (hierarchical gating: no style points for a wrong answer).
* ``AllOf`` / ``AnyOf``: every / some part reaches ``threshold``; ``reward: binary`` gives 1 or 0,
  ``reward: min`` / ``max`` passes the weakest / strongest part's reward through.

A part that raises makes the whole verdict raise (``verifier_error``): a composition never hides a failure.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier, undecided, verify
from rollgen.verifiers.spec import VerifierSpec, build_all

__all__ = ["AllOf", "AnyOf", "Cascade", "WeightedSum"]


def _criterion(verdict: Verdict, **extra: Any) -> dict[str, Any]:
    return {"reward": verdict.reward, "verifier": verdict.verifier, **extra, "details": verdict.details}


class _Composite(Verifier):
    def __init__(self, params: BaseModel):
        super().__init__(params)
        self.labelled = build_all(self._specs())  # (label, verifier) pairs

    def _specs(self) -> list[VerifierSpec]:
        return self.params.verifiers  # type: ignore[attr-defined]

    @property
    def needs_answer(self) -> bool:  # type: ignore[override]
        return any(getattr(part, "needs_answer", False) for _, part in self.labelled)

    def parts(self) -> list[Any]:
        return [part for _, part in self.labelled]


class Cascade(_Composite):
    """The first stage that decides gives the reward; later stages run only when needed."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        stages: list[VerifierSpec] = Field(min_length=1)
        escalate: Literal["undecided", "not_accepted"] = Field(
            "undecided", description="undecided: go on only when a stage could not parse an answer; "
            "not_accepted: also when its reward is below accept_at")
        accept_at: float = Field(1.0, ge=0.0, le=1.0)

    params: Params
    name = "cascade"

    def _specs(self) -> list[VerifierSpec]:
        return self.params.stages

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        criteria: dict[str, Any] = {}
        last = len(self.labelled) - 1
        for i, (label, part) in enumerate(self.labelled):
            verdict = await verify(part, task, rollout)
            criteria[label] = _criterion(verdict, stage=i)
            go_on = undecided(verdict.details) or (
                self.params.escalate == "not_accepted" and verdict.reward < self.params.accept_at)
            if i == last or not go_on:
                details = {"decided_by": label, "stage": i, "criteria": criteria}
                if undecided(verdict.details):
                    details["decided"] = False
                return Verdict(reward=verdict.reward, details=details, verifier=f"{self.name}:{label}")
        raise AssertionError("unreachable: a cascade has at least one stage")


class WeightedSum(_Composite):
    """``sum(w_i * r_i) / sum(w_i)`` over the parts, with an optional gate on the first part."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        verifiers: list[VerifierSpec] = Field(min_length=1)
        weights: list[float] | None = Field(None, description="one per verifier (null = equal); normalised")
        gate: float | None = Field(None, ge=0.0, le=1.0, description="first part below this → reward 0")

        @model_validator(mode="after")
        def _weights_match(self) -> WeightedSum.Params:
            if self.weights is not None:
                if len(self.weights) != len(self.verifiers):
                    raise ValueError(f"{len(self.weights)} weights for {len(self.verifiers)} verifiers")
                if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                    raise ValueError("weights must be >= 0 with a positive sum")
            return self

    params: Params
    name = "weighted"

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        weights = self.params.weights or [1.0] * len(self.labelled)
        total = sum(weights)
        criteria: dict[str, Any] = {}
        reward = 0.0
        for i, ((label, part), w) in enumerate(zip(self.labelled, weights)):
            verdict = await verify(part, task, rollout)
            criteria[label] = _criterion(verdict, weight=w / total)
            if i == 0 and self.params.gate is not None and verdict.reward < self.params.gate:
                details = {"gated": True, "gate": self.params.gate, "criteria": criteria}
                return Verdict(reward=0.0, details=details, verifier=self.name)
            reward += w / total * verdict.reward
        return Verdict(reward=min(1.0, reward), details={"criteria": criteria}, verifier=self.name)


class _Quantifier(_Composite):
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        verifiers: list[VerifierSpec] = Field(min_length=1)
        threshold: float = Field(1.0, ge=0.0, le=1.0, description="a part passes at this reward")
        reward: Literal["binary", "min", "max"] = "binary"
        short_circuit: bool = Field(True, description="with reward: binary, stop once the outcome is known "
                                    "(saves judge calls); min/max always run every part")

    params: Params
    _all: bool

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        p = self.params
        criteria: dict[str, Any] = {}
        rewards: list[float] = []
        for label, part in self.labelled:
            verdict = await verify(part, task, rollout)
            passed = verdict.reward >= p.threshold
            criteria[label] = _criterion(verdict, passed=passed)
            rewards.append(verdict.reward)
            if p.short_circuit and p.reward == "binary" and passed != self._all:  # AllOf: a failure decides; AnyOf: a pass does
                break
        passes = [c["passed"] for c in criteria.values()]
        ok = all(passes) and len(passes) == len(self.labelled) if self._all else any(passes)
        if p.reward == "binary":
            reward = float(ok)
        else:
            reward = min(rewards) if p.reward == "min" else max(rewards)
        return Verdict(reward=reward, details={"passed": ok, "criteria": criteria}, verifier=self.name)


class AllOf(_Quantifier):
    """Every part must reach ``threshold``."""

    name = "all"
    _all = True


class AnyOf(_Quantifier):
    """At least one part must reach ``threshold``."""

    name = "any"
    _all = False
