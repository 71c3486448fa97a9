"""Test cases for ``rollgen validate``: equivalent renderings of a gold answer (must score 1) and
perturbations of it (must score 0).

Numbers get the renderings people and models write (``0.5`` / ``1/2`` / ``\\frac{1}{2}`` / ``\\boxed{1/2}``,
``1,000`` / ``1000``, units, a trailing period, "The answer is 12.", reasoning before the answer, a wrong
guess inside ``<think>``), the ways real replies state them (a sentence after "Final Answer:", the number
first, a concluding sentence, units after the math, a clause or a self-check after the answer, an
intermediate box before the final statement, a retracted box then the corrected one, LaTeX thousands
separators, scientific notation, mixed numbers) and the numeric perturbations (off by one, sign flip).
Multi-part golds (``2, -3``, ``(2, -1)``) get one box per part, boxes side by side, "x = 2 or x = -3",
named parts, a prose list and the list reordered; an interval gets its inequality (``rollgen.verifiers.
parts_cases``). Every gold gets the generic perturbations: another task's answer, empty, the question
repeated, a hedge ("7 or 8", or in prose: "between 90 and 110, likely around 100"), the right answer
buried in a list, output truncated mid-way (``finish_reason=length``), a long rambling answer, a reply
that never states an answer but ends on the gold's number, the question's own quantity restated as the
answer (``\\boxed{6/8}`` for "simplify 6/8") and ``6/8 = ?``. Kinds that do not apply to a gold (a sign
flip of 0, thousands of 12) are skipped, not counted.

A verifier whose answers are not short final answers (JSON, code) brings its own cases: a method
``validation_cases(task, other_task) -> list[Case] | None`` (see ``JsonSchemaVerifier`` and ``CodeTests``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

from rollgen.records import Task
from rollgen.verifiers.extract import parse_number, restates_question, task_question
from rollgen.validation.parts_cases import PART_RENDERINGS, QUESTION_PERTURBATIONS, part_renderings, question_perturbations

__all__ = ["PERTURBATIONS", "RENDERINGS", "Case", "equivalent", "perturbations", "render_number", "renderings"]

RENDERINGS = ("plain", "boxed", "answer_is", "trailing_period", "inline_math", "reasoning", "think", "units",
              "thousands", "no_thousands", "decimal", "fraction", "latex_frac", "boxed_fraction", "letter_paren",
              "answer_sentence", "number_first", "conclusion", "units_after_math", "trailing_clause", "self_check",
              "intermediate_box", "retracted_box", "thousands_braces", "thousands_thin_space", "thousands_bang",
              "thousands_inline", "scientific", "mixed_number", *PART_RENDERINGS)
PERTURBATIONS = ("off_by_one", "sign_flip", "other_task", "empty", "question_repeated", "hedged", "buried_in_list",
                 "truncated", "rambling", "no_statement", "hedged_prose", "gold_after_answer", *QUESTION_PERTURBATIONS)

_LETTER = re.compile(r"\(?([A-J])\)?")
_MAX_DENOMINATOR = 10_000  # fraction renderings only for "nice" fractions


@dataclass(frozen=True, slots=True)
class Case:
    """One completion to score. ``bound``: a positive fails below it (default 1), a negative above it
    (default 0; a partial-credit verifier may allow e.g. 0.5 for one of two fields wrong)."""

    kind: str
    positive: bool
    completion: str
    finish_reason: str = "stop"
    bound: float | None = None

    def failed(self, reward: float | None) -> bool:
        if self.positive:
            return reward is None or reward < (1.0 if self.bound is None else self.bound)
        return reward is not None and reward > (0.0 if self.bound is None else self.bound)


def render_number(v: Fraction) -> str:
    """Integer, terminating decimal, or ``p/q``."""
    if v.denominator == 1:
        return str(v.numerator)
    d = v.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{v.numerator}/{v.denominator}"
    with localcontext() as ctx:
        ctx.prec = len(str(abs(v.numerator))) + max(twos, fives) + 5
        text = format(Decimal(v.numerator) / Decimal(v.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _frac_tex(v: Fraction) -> str:
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def renderings(gold: str, kinds: set[str] | None = None, question: str = "") -> list[Case]:
    """Completions equivalent to ``gold`` (each should score 1). A form the question itself writes ("write
    0.75 as a fraction") is not equivalent: the gold's own form is used instead."""
    value = parse_number(gold)
    g = gold.strip()
    c = render_number(value) if value is not None else g
    if c != g and restates_question(c, g, question):
        c = g
    out = {
        "plain": g,
        "boxed": f"\\boxed{{{g}}}",
        "answer_is": f"The answer is {g}.",
        "trailing_period": f"{g}.",
        "reasoning": ("Let me work through this step by step.\nFirst I write down what is given, then I simplify "
                      f"it carefully.\nSo the final answer is \\boxed{{{c}}}."),
    }
    if value is not None:
        wrong = render_number(value + 3)
        out["think"] = f"<think>\nMaybe it is {wrong}? No, let me check that again.\n</think>\nThe answer is \\boxed{{{c}}}."
        out["inline_math"] = f"The answer is ${c}$."
        out["units"] = f"\\boxed{{{c} \\text{{ cm}}}}"
        if value.denominator == 1 and abs(value) >= 1000:
            out["thousands"] = f"\\boxed{{{value.numerator:,}}}"
        if re.search(r"\d,\d{3}", g):
            out["no_thousands"] = f"\\boxed{{{c}}}"
        if value.denominator != 1:
            dec = render_number(value)
            if "/" not in dec and dec != g and not restates_question(dec, g, question):
                out["decimal"] = f"\\boxed{{{dec}}}"
            if value.denominator <= _MAX_DENOMINATOR:
                out["fraction"] = f"The answer is {value.numerator}/{value.denominator}."
                out["latex_frac"] = f"\\boxed{{{_frac_tex(value)}}}"
                out["boxed_fraction"] = f"\\boxed{{{value.numerator}/{value.denominator}}}"
        out.update(_statements(value, c))
    else:
        out["think"] = f"<think>\nIt could be something else, let me check.\n</think>\nThe answer is \\boxed{{{g}}}."
        out.update(part_renderings(g))
        if m := _LETTER.fullmatch(g):
            out["letter_paren"] = f"The correct option is ({m.group(1)})."
    return [Case(k, True, text) for k, text in out.items() if kinds is None or k in kinds]


def _statements(value: Fraction, c: str) -> dict[str, str]:
    """How real replies state a number: in a sentence, after the work, with a check or a retraction."""
    other, wrong = render_number(value + 5), render_number(value + 1)
    k = 8 if value != 8 else 9
    out = {
        "answer_sentence": f"Final Answer: The result is {c}. I hope it is correct.",
        "number_first": f"The answer is: {c} students take the bus.",
        "conclusion": ("First I write down what is given.\nNext I combine the quantities one step at a time.\n"
                       f"Therefore, the total is {c}."),
        "units_after_math": f"So the length is ${c}$ cm.",
        "trailing_clause": f"She started with some apples. So she has {c} apples left after giving {k} to her brother.",
        "self_check": f"The answer is \\boxed{{{c}}}.\nCheck: {c} + {k} = {render_number(value + k)}, which matches.",
        "intermediate_box": (f"The first part is \\boxed{{{other}}}.\nThen we take {other} and combine it with the rest.\n"
                             f"Therefore, the final result is {c}."),
        "retracted_box": (f"So the answer is \\boxed{{{wrong}}}.\nWait, that is wrong: I dropped a term. Redoing the "
                          f"last step gives {c}.\nSo the answer is \\boxed{{{c}}}."),
    }
    if value.denominator == 1 and abs(value) >= 1000:
        grouped = f"{value.numerator:,}"
        out["thousands_braces"] = f"The answer is ${grouped.replace(',', '{,}')}$."
        out["thousands_thin_space"] = f"\\boxed{{{grouped.replace(',', chr(92) + ',')}}}"
        out["thousands_bang"] = f"\\boxed{{{grouped.replace(',', ',' + chr(92) + '!')}}}"
        out["thousands_inline"] = f"So the total is ${grouped}$."
        digits = len(str(abs(value.numerator))) - 1
        mantissa = render_number(value / 10**digits)
        out["scientific"] = f"\\boxed{{{mantissa} \\times 10^{{{digits}}}}}"
    if value > 1 and value.denominator != 1 and value.denominator <= 16:
        whole = value.numerator // value.denominator
        rest = value - whole
        out["mixed_number"] = f"It takes {whole} {rest.numerator}/{rest.denominator} hours."
    return out


def equivalent(a: str, b: str) -> bool:
    """Whether two gold answers are the same (numerically, else after trimming and case folding)."""
    x, y = parse_number(a), parse_number(b)
    if x is not None and y is not None:
        return x == y
    return a.strip().casefold() == b.strip().casefold()


def _rambling(gold: str, decoys: list[str], chars: int, rng: random.Random) -> str:
    """Thousands of characters of going back and forth between candidates, ending on the gold answer."""
    openers = ["Hmm, maybe it is {x}.", "Wait, perhaps {x} instead.", "Let me reconsider, {x} could work.",
               "Or is it {x}?", "I keep going back and forth on {x}."]
    block = " ".join(rng.choice(openers).format(x=rng.choice([*decoys, gold])) for _ in range(40))
    return " ".join([block] * (chars // (len(block) + 1) + 1)) + f" I am not sure, so maybe {gold}"


def perturbations(task: Task, gold: str, other: str | None, kinds: set[str] | None = None,
                  rambling_chars: int = 40_000) -> list[Case]:
    """Completions that must score 0 for ``gold`` (``other`` is another task's, different, answer)."""
    value = parse_number(gold)
    g = gold.strip()
    rng = random.Random(task.id)
    if value is not None:
        near = [render_number(value - 1), render_number(value + 1), render_number(value + 2)]
    else:
        near = [other or "something else", "none of these", "unknown"]
    out: dict[str, Case] = {}

    def add(kind: str, text: str, finish_reason: str = "stop") -> None:
        if kinds is None or kind in kinds:
            out[kind] = Case(kind, False, text, finish_reason)

    if value is not None:
        add("off_by_one", f"So the answer is \\boxed{{{render_number(value + 1)}}}.")
        if value != 0:
            add("sign_flip", f"So the answer is \\boxed{{{render_number(-value)}}}.")
    if other is not None:
        add("other_task", f"So the answer is \\boxed{{{other.strip()}}}.")
    add("empty", "")
    add("question_repeated", task_question(task))
    add("hedged", f"The answer is {near[1]} or {g}.")
    add("buried_in_list", f"The answer is one of these: \\boxed{{{near[0]}, {g}, {near[2]}}}")
    add("truncated", f"Let me work through this step by step. First we find {g}, so the answer is {g}. To double-check "
                     "it, we still need to",
        finish_reason="length")
    add("rambling", _rambling(g, near, rambling_chars, rng))
    add("no_statement", "Let me think about the numbers in this problem one at a time.\nIt is easy to make a "
                        f"mistake here, like the one in exercise {g}")
    add("hedged_prose", f"I am not completely sure. The answer is somewhere between {near[0]} and {near[2]}, likely "
                        f"around {g}.")
    if value is not None:
        add("gold_after_answer", f"The answer is {near[1]}, which is what is left after giving {g} away.")
    for kind, text in question_perturbations(task_question(task), gold).items():
        add(kind, text)
    return list(out.values())
