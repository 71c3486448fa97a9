"""Reward shaping around another verifier: length and format penalties.

``reward = max(0, inner - length_penalty - format_penalty)``, applied only when the inner reward is above 0.

* length: past ``max_chars`` characters of the whole completion, ``per_1k_chars`` is taken off per 1,000
  characters over, at most ``max_length_penalty`` (a soft "be concise" pressure; the hard cut-off is the
  ``guards.max_chars`` guard);
* format: each ``required`` regex that does not match the completion and each ``forbidden`` one that does
  costs ``format_penalty`` (e.g. required ``\\\\boxed\\{``, forbidden ``(?i)as an ai``), at most
  ``max_format_penalty``.

``details``: ``inner`` (the wrapped verdict), ``length_penalty``, ``format_penalty``, ``format_violations``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rollgen.build import build
from rollgen.config import Regex
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier, undecided, verify
from rollgen.verifiers.spec import VerifierSpec

__all__ = ["Penalized"]


class Penalized(Verifier):
    """Another verifier's reward minus length and format penalties."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        verifier: VerifierSpec
        max_chars: int | None = Field(None, ge=1, description="no length penalty up to this many characters")
        per_1k_chars: float = Field(0.1, ge=0.0, le=1.0)
        max_length_penalty: float = Field(0.5, ge=0.0, le=1.0)
        required: list[Regex] = Field(default_factory=list, description="regexes the completion must match")
        forbidden: list[Regex] = Field(default_factory=list, description="regexes it must not match")
        format_penalty: float = Field(0.2, ge=0.0, le=1.0, description="per violated pattern")
        max_format_penalty: float = Field(1.0, ge=0.0, le=1.0)


    params: Params
    name = "penalized"

    def __init__(self, params: Params):
        super().__init__(params)
        self.inner = build(params.verifier)
        self.needs_answer = bool(getattr(self.inner, "needs_answer", False))
        self._required = [re.compile(x) for x in params.required]
        self._forbidden = [re.compile(x) for x in params.forbidden]

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        p = self.params
        inner = await verify(self.inner, task, rollout)
        text = rollout.completion
        length_penalty = 0.0
        if p.max_chars is not None and len(text) > p.max_chars:
            length_penalty = min(p.max_length_penalty, (len(text) - p.max_chars) / 1000 * p.per_1k_chars)
        violations = [f"missing {rx.pattern}" for rx in self._required if not rx.search(text)]
        violations += [f"forbidden {rx.pattern}" for rx in self._forbidden if rx.search(text)]
        format_penalty = min(p.max_format_penalty, len(violations) * p.format_penalty)
        reward = max(0.0, inner.reward - length_penalty - format_penalty) if inner.reward > 0 else 0.0
        details: dict[str, Any] = {"inner": {"reward": inner.reward, "verifier": inner.verifier, "details": inner.details},
                                   "length_penalty": round(length_penalty, 6), "format_penalty": round(format_penalty, 6),
                                   "format_violations": violations}
        if undecided(inner.details):
            details["decided"] = False
        return Verdict(reward=reward, details=details, verifier=f"{self.name}:{inner.verifier}")

    def parts(self) -> list[Any]:
        return [self.inner]
