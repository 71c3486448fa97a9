"""Instruction following: the share of a task's verifiable instructions (IFEval's) that the reply follows.

A task carries IFEval's fields in ``metadata``: ``instruction_id_list`` (``["punctuation:no_comma",
"detectable_format:title"]``) and ``kwargs`` (one object per id: ``{"num_words": 300, "relation": "at least"}``),
as ``server=instruction_following`` composes them and as IFEval's ``input_data.jsonl``, Hugging Face's
``google/IFEval`` and NeMo Gym's instruction-following rows give them. The reply is the text after
``</think>``. ``mode: strict`` (default) checks it as written; ``loose`` also accepts it without its first
or last line and without ``*`` (IFEval's loose accuracy). ``reward: fraction`` (default) is the share of
instructions followed (IFEval's instruction-level accuracy), ``all`` is 1 only when every one is (prompt-level).
``details.instructions`` lists each instruction with its strict and loose verdict.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.validation.cases import Case
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import answer_region
from rollgen.verifiers.ifeval import broken, compliant_reply, evaluate, instructions_of

__all__ = ["InstructionFollowing"]


class InstructionFollowing(Verifier):
    """Share of the task's IFEval instructions the reply follows (strict or loose), with a verdict for each."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        mode: Literal["strict", "loose"] = Field("strict", description="strict | loose: also without the first "
                                                                       "or last line and without '*' (IFEval)")
        reward: Literal["fraction", "all"] = Field("fraction", description="fraction: share of instructions "
                                                                           "followed | all: 1 only when every one is")

    params: Params
    name = "instructions"

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        ids, kwargs = instructions_of(task.metadata)
        verdicts = evaluate(ids, kwargs, answer_region(rollout.completion or ""))
        followed = [getattr(v, self.params.mode) for v in verdicts]
        share = sum(followed) / len(followed)
        reward = share if self.params.reward == "fraction" else float(all(followed))
        details: dict[str, Any] = {
            "mode": self.params.mode, "followed": sum(followed), "total": len(followed), "all_followed": all(followed),
            "instructions": [{"id": v.id, "kwargs": kw, "strict": v.strict, "loose": v.loose}
                             for v, kw in zip(verdicts, kwargs)],
            "decided": True,
        }
        return Verdict(reward=reward, details=details, verifier=self.name)

    def validation_cases(self, task: Task, other: Task | None) -> list[Case] | None:
        """Cases for ``rollgen validate``: a reply built to follow every instruction (bare, and after a
        ``<think>`` block) must score 1; the same reply broken for one instruction at a time must score at most
        the share left when only that one fails, and an empty reply 0. None when
        no following reply can be built for the task (see ``rollgen.verifiers.ifeval.reply``)."""
        ids, kwargs = instructions_of(task.metadata)
        reply = compliant_reply(ids, kwargs, _topic_words(task))
        if reply is None:
            return None
        n = len(ids)
        bound = (n - 1) / n if self.params.reward == "fraction" else 0.0
        cases = [Case("follows_all", True, reply),
                 Case("follows_all_after_thinking", True, f"<think>Which rules apply here?</think>{reply}"),
                 Case("empty", False, "")]
        for iid, kw in zip(ids, kwargs):
            kind = "breaks_" + iid.split(":", 1)[-1]
            cases.append(Case(kind, False, broken(iid, kw, reply), bound=bound))
        return cases


def _topic_words(task: Task) -> list[str]:
    words = task.metadata.get("topic_words") or []
    return [w for w in words if isinstance(w, str)]
