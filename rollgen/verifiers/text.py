"""String answers: exact match, normalised match, regex extraction (multiple-choice letters: ``verifiers.choice``).

Each extracts the final answer (``extract``: after ``</think>``, the last ``\\boxed{}``, "answer is X",
or the last line) and compares it with ``task.answer`` (a list of strings means any of them).
``details`` always hold ``extracted``, ``expected`` and ``rule``; ``extracted: null`` means nothing to
compare (a cascade escalates on it).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rollgen.config import Regex
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.choice import MultipleChoice  # its home before verifiers.choice; `_target_`s still name it
from rollgen.verifiers.extract import (
    Extract,
    answer_region,
    final_answer,
    gold_answers,
    normalize_text,
    parse_number,
)

__all__ = ["ExactMatch", "FormatCheck", "MultipleChoice", "NormalizedMatch", "RegexMatch"]

class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extract: Extract = Field("auto", description="auto (boxed, answer is, last line) | boxed | answer_is | last_line | full")


class ExactMatch(Verifier):
    """1.0 when the extracted answer equals a gold answer character for character (after trimming spaces)."""

    class Params(_Params):
        case_sensitive: bool = True

    params: Params
    name = "exact"
    needs_answer = True

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        golds = gold_answers(task.answer)
        extracted, rule = final_answer(rollout.completion, self.params.extract)
        fold = (lambda s: s.strip()) if self.params.case_sensitive else (lambda s: s.strip().casefold())
        match = extracted is not None and fold(extracted) in {fold(g) for g in golds}
        details = {"extracted": extracted, "expected": golds[0] if len(golds) == 1 else golds, "rule": rule,
                   "match": match}
        return Verdict(reward=float(match), details=details, verifier=self.name)


class NormalizedMatch(Verifier):
    """1.0 when the answers agree after ``normalize_text`` (case, punctuation, articles, spacing, ``$``,
    ``\\text{}``, thousands separators)."""

    class Params(_Params):
        lowercase: bool = True
        remove_articles: bool = True

    params: Params
    name = "normalized"
    needs_answer = True

    def _norm(self, s: str) -> str:
        return normalize_text(s, lowercase=self.params.lowercase, articles=self.params.remove_articles)

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        golds = gold_answers(task.answer)
        extracted, rule = final_answer(rollout.completion, self.params.extract)
        norm = self._norm(extracted) if extracted is not None else None
        match = bool(norm) and norm in {self._norm(g) for g in golds}
        details = {"extracted": extracted, "expected": golds[0] if len(golds) == 1 else golds, "rule": rule,
                   "normalized": norm, "match": match}
        return Verdict(reward=float(match), details=details, verifier=self.name)


def _compare(a: str, b: str, how: str) -> bool:
    if how == "exact":
        return a.strip() == b.strip()
    if how == "numeric":
        x, y = parse_number(a), parse_number(b)
        return x is not None and x == y
    return normalize_text(a) == normalize_text(b) and bool(normalize_text(a))


class RegexMatch(Verifier):
    """The answer is what ``pattern`` captures (group ``answer``, else group 1, else the whole match) in the
    answer region; a task may bring its own pattern in ``metadata[pattern_key]`` (NeMo Gym's ``output_regex``)."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        pattern: Regex = Field(r"(?i)answer\s*[:=]\s*(?P<answer>[^\n]+?)\s*$", description="a Python regex")
        occurrence: Literal["last", "first"] = "last"
        compare: Literal["exact", "normalized", "numeric"] = "normalized"
        multiline: bool = Field(True, description="^ and $ match at line breaks")
        pattern_key: str | None = Field("output_regex", description="task.metadata key of a per-task pattern")


    params: Params
    name = "regex"
    needs_answer = True

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        p = self.params
        golds = gold_answers(task.answer)
        pattern = (task.metadata.get(p.pattern_key) if p.pattern_key else None) or p.pattern
        rx = re.compile(pattern, re.MULTILINE if p.multiline else 0)
        matches = list(rx.finditer(answer_region(rollout.completion)))
        extracted = None
        if matches:
            m = matches[-1] if p.occurrence == "last" else matches[0]
            group = "answer" if "answer" in rx.groupindex else (1 if rx.groups else 0)
            extracted = (m.group(group) or "").strip() or None
        match = extracted is not None and any(_compare(extracted, g, p.compare) for g in golds)
        details = {"extracted": extracted, "expected": golds[0] if len(golds) == 1 else golds, "rule": "regex",
                   "pattern": pattern, "match": match}
        return Verdict(reward=float(match), details=details, verifier=self.name)


class FormatCheck(Verifier):
    """A format criterion that needs no gold answer: the share of ``required`` regexes that match the
    completion and ``forbidden`` ones that do not (1.0 when all hold). Meant as a part of a weighted sum."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        required: list[Regex] = Field(default_factory=lambda: [r"\\boxed\{"], description="regexes that must match")
        forbidden: list[Regex] = Field(default_factory=list, description="regexes that must not match")
        region: Literal["answer", "full"] = Field("full", description="answer: only the text after </think>")


    params: Params
    name = "format"

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        p = self.params
        text = answer_region(rollout.completion) if p.region == "answer" else rollout.completion
        checks = {f"required {x}": re.search(x, text) is not None for x in p.required}
        checks.update({f"forbidden {x}": re.search(x, text) is None for x in p.forbidden})
        reward = sum(checks.values()) / len(checks) if checks else 1.0
        return Verdict(reward=reward, details={"checks": checks, "decided": True}, verifier=self.name)
