"""Multiple choice: 1.0 when the option the answer picks is the gold one; a hedge scores 0 (``verifier=choice``).

The pick is read by ``rollgen.verifiers.extract.choose``: "(B)", "Answer: B", "**B**", "B) text", "The answer
is B.", "\\boxed{B}", lowercase where unambiguous, or the option's own text. The gold (``task.answer``) is a
letter (``B``, ``(B)``), a 0-based index, or an option's text when ``task.metadata[options_key]`` lists the
options in the order shown.

Shuffled options: a task from ``server=mcqa`` with ``shuffle_choices`` carries ``metadata.choice_seed``, and
each repeat shows the options in ``choice_order(f"{seed}:{task id}:{repeat}")``. When the prompt a rollout
was given (its last user message) is not the task's own, the verifier puts the options and the gold in that
repeat's order, so ``rollgen verify`` and ``rollgen validate`` score a stored rollout as the run did.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.validation.cases import Case
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import normalize_text, task_question
from rollgen.verifiers.extract.choice import choice_order, choose

__all__ = ["MultipleChoice", "gold_index", "shown_order"]


def gold_index(gold: Any, options: list[str], letters: str, labels: list[str] | None = None) -> int:
    """The 0-based index of the gold option: a letter (``B``, ``(B)``), an int index, one of ``labels`` (ARC's
    ``"1"``..``"4"``), or an option's text. Raises ValueError for anything else."""
    n = len(options) if options else len(letters)
    if isinstance(gold, int) and not isinstance(gold, bool):
        if 0 <= gold < n:
            return gold
        raise ValueError(f"the gold index {gold} is out of range for {n} options")
    text = str(gold).strip() if gold is not None else ""
    if labels and text in labels:
        return labels.index(text)
    if (m := re.fullmatch(r"\(?([A-Z])\)?\.?", text)) and letters.find(m.group(1)) in range(n):
        return letters.index(m.group(1))
    hits = [i for i, o in enumerate(options) if normalize_text(str(o)) == normalize_text(text)] if text else []
    if len(hits) == 1:
        return hits[0]
    raise ValueError(f"the gold answer {gold!r} is not a choice letter, index or listed option")


def shown_order(task: Task, rollout: Rollout | None, n: int) -> list[int] | None:
    """The order a shuffled task's options were shown in for ``rollout`` (position i shows option order[i]);
    None when they were shown as the task lists them."""
    seed = task.metadata.get("choice_seed")
    if seed is None or rollout is None:
        return None
    shown = next((m.get("content") for m in reversed(rollout.messages) if m.get("role") == "user"), None)
    if shown is None or shown == task_question(task):
        return None
    return choice_order(f"{seed}:{task.id}:{rollout.repeat}", n)


class MultipleChoice(Verifier):
    """1.0 when the chosen option is the gold option. A hedge ("B or C", "A/B", "A, C") scores 0."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        letters: str = Field("ABCDEFGHIJ", pattern=r"^[A-Z]{2,26}$", description="the valid choice letters")
        options_key: str = "options"

    params: Params
    name = "choice"
    needs_answer = True

    def _options(self, task: Task) -> list[str]:
        options = task.metadata.get(self.params.options_key) or []
        return [str(o) for o in options] if isinstance(options, list) else []

    def _gold(self, task: Task, rollout: Rollout | None = None) -> tuple[str, list[str]]:
        """The gold letter and the options, in the order ``rollout`` was shown them."""
        options, letters = self._options(task), self.params.letters
        index = gold_index(task.answer, options, letters, task.metadata.get("option_labels"))
        if options and (order := shown_order(task, rollout, len(options))) is not None:
            options, index = [options[j] for j in order], order.index(index)
        return letters[index], options

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        gold, options = self._gold(task, rollout)
        found = choose(rollout.completion, self.params.letters, options or None)
        reward = float(found.letter == gold and not found.hedged)
        details: dict[str, Any] = {"extracted": found.letter, "expected": gold, "rule": found.rule,
                                   "hedged": found.hedged}
        return Verdict(reward=reward, details=details, verifier=self.name)

    def validation_cases(self, task: Task, other: Task | None) -> list[Case] | None:
        """``rollgen validate`` cases: the gold letter written every way a reply writes it (and the option's
        text) must score 1; another letter, a hedge, the options listed, the question repeated must not."""
        gold, options = self._gold(task)
        valid = self.params.letters[: len(options)] if options else self.params.letters[:4]
        wrong = next(x for x in valid if x != gold)
        text = options[valid.index(gold)] if options else None
        cases = [Case("letter_plain", True, gold), Case("letter_paren", True, f"({gold})"),
                 Case("answer_colon", True, f"Answer: {gold}"), Case("letter_bold", True, f"**{gold}**"),
                 Case("answer_is", True, f"The answer is {gold}."), Case("lowercase", True, f"answer: {gold.lower()}"),
                 Case("boxed", True, f"\\boxed{{{gold}}}"),
                 Case("reasoning", True, f"Let me rule out {wrong}: it does not fit.\n\nAnswer: ({gold})"),
                 Case("other_letter", False, f"Answer: {wrong}"), Case("other_paren", False, f"({wrong})"),
                 Case("hedged", False, f"The answer is {gold} or {wrong}."),
                 Case("hedged_slash", False, f"Answer: {wrong}/{gold}"),
                 Case("all_letters", False, " ".join(valid)), Case("empty", False, ""),
                 Case("question_repeated", False, task_question(task)),
                 Case("truncated", False, f"Let me think about option {gold}", finish_reason="length")]
        if text is not None:
            wrong_text = options[valid.index(wrong)]
            cases += [Case("label_text", True, f"{gold}) {text}"), Case("option_text", True, f"The answer is {text}."),
                      Case("other_option_text", False, f"The answer is {wrong_text}."),
                      Case("label_contradicts", False, f"{gold}) {wrong_text}")]
        return cases
