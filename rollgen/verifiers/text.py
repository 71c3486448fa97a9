"""String answers: exact match, normalised match, regex extraction, multiple-choice letters.

Each extracts the final answer (``extract``: after ``</think>``, the last ``\\boxed{}``, "answer is X",
or the last line) and compares it with ``task.answer`` (a list of strings means any of them).
``details`` always hold ``extracted``, ``expected`` and ``rule``; ``extracted: null`` means nothing to
compare (a cascade escalates on it).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rollgen.config import Regex
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import (
    Extract,
    answer_is,
    answer_region,
    final_answer,
    gold_answers,
    last_boxed,
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


_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_LETTER_LINE = re.compile(r"^\W*([A-Z])\W*$", re.MULTILINE)
_LEAD = re.compile(r"^[\s(\[*`$]*(?:\\text\{)?\s*([A-Z])(?![A-Za-z])")


class MultipleChoice(Verifier):
    """1.0 when the chosen letter is the gold letter. A hedge ("B or C", "A/B", "A, C") scores 0.

    The gold is a letter (``B``, ``(B)``), a 0-based index, or an option's text when
    ``task.metadata[options_key]`` lists the options in order.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        letters: str = Field("ABCDEFGHIJ", pattern=r"^[A-Z]{2,26}$", description="the valid choice letters")
        options_key: str = "options"

    params: Params
    name = "choice"
    needs_answer = True

    def _gold(self, task: Task) -> str:
        gold, letters = task.answer, self.params.letters
        if isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(letters):
            return letters[gold]
        text = str(gold).strip() if gold is not None else ""
        if m := re.fullmatch(r"\(?([A-Z])\)?\.?", text):
            return m.group(1)
        options = task.metadata.get(self.params.options_key) or []
        for i, option in enumerate(options):
            if i < len(letters) and normalize_text(str(option)) == normalize_text(text):
                return letters[i]
        raise ValueError(f"the gold answer {gold!r} is not a choice letter, index or listed option")

    def _hedge(self, s: str) -> bool:
        ls = re.escape(self.params.letters)
        return re.search(rf"(?<![A-Za-z])[{ls}]\)?\s*(?:,|/|\bor\b|\band\b|&)\s*\(?[{ls}](?![A-Za-z])", s) is not None

    def _choose(self, region: str) -> tuple[str | None, str, bool]:
        valid = self.params.letters
        for rule, find in (("boxed", last_boxed), ("answer_is", answer_is)):
            cand = find(region)
            if cand and (m := _LEAD.match(cand)) and m.group(1) in valid:
                return m.group(1), rule, self._hedge(cand)
        for rule, rx in (("letter_line", _LETTER_LINE), ("parenthesised", _PAREN_LETTER)):
            found = [x for x in rx.findall(region) if x in valid]
            if found:
                return found[-1], rule, rule == "parenthesised" and len(set(found)) > 1
        return None, "none", False

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        gold = self._gold(task)
        letter, rule, hedged = self._choose(answer_region(rollout.completion))
        reward = float(letter == gold and not hedged)
        details: dict[str, Any] = {"extracted": letter, "expected": gold, "rule": rule, "hedged": hedged}
        return Verdict(reward=reward, details=details, verifier=self.name)


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
