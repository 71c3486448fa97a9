"""Answer extraction, in one public module: what a completion answers, what the gold answer is, and how both
are read as values. Verifiers, guards, ``rollgen validate`` and user code import from here.

Where the answer is (``region``): ``answer_region`` (after the last ``</think>``, before a leaked chat-template
turn), ``boxes`` / ``last_boxed`` / ``all_boxed`` (``\\boxed{}`` and ``\\fbox{}`` groups), ``answer_is`` and
``answer_statements`` ("the answer is X", "Answer: X", a "Final Answer" heading), ``last_line``,
``strip_wrappers``, ``is_empty_answer``, ``task_question``.

Two extractors, for two kinds of answer:

* ``final_answer(text, how)``: a text answer (exact, normalised, regex, choice, judge verifiers): the last box,
  else "the answer is", else the last line (``how`` picks one rule);
* ``extract_answer(text, question)`` / ``find_final``: a math answer: the value the completion *states* (a box,
  "the answer is", a concluding sentence), never an incidental last number (``final``).

Values (``numbers``, ``values``): ``parse_number`` / ``parse_number_list`` (exact fractions of ``3/4``,
``\\frac{3}{4}``, ``1,000``, ``1.2 \\times 10^3``), ``plain_answer``, ``value_of`` (the value a sentence states),
``reduce_math`` (``3 + 4 = 7`` → ``7``), ``count_parts``. The question's own quantities (``quantities``):
``restates_question``, ``restatement``.

Multiple choice (``choice``): ``choose`` (the option a reply picks: "(B)", "Answer: b", "B) text", the
option's text; hedges flagged), ``choice_order`` (the shuffled order of a task's options for one repeat).

Gold answers (``answers``): ``gold_text`` (one value as text), ``gold_answers`` (a list means any of them),
``gold_value`` (what a worked solution arrives at), and ``normalize_text`` for string comparisons.
"""

from __future__ import annotations

from rollgen.verifiers.extract.answers import gold_answers, gold_text, gold_value, normalize_text
from rollgen.verifiers.extract.choice import Choice, choice_order, choose
from rollgen.verifiers.extract.final import RETRACTION, FinalAnswer, boxed_answer, extract_answer, find_final
from rollgen.verifiers.extract.numbers import (
    NUMBER,
    SCIENTIFIC,
    NumberList,
    count_numbers,
    parse_number,
    parse_number_list,
    plain_answer,
    tex_thousands,
)
from rollgen.verifiers.extract.quantities import canon, question_quantities, restatement, restates_question
from rollgen.verifiers.extract.region import (
    Extract,
    Found,
    all_boxed,
    answer_is,
    answer_region,
    answer_statements,
    boxes,
    braced,
    final_answer,
    has_box,
    is_empty_answer,
    last_boxed,
    last_line,
    strip_wrappers,
    task_question,
)
from rollgen.verifiers.extract.values import (
    MATH_SPAN,
    asked_stems,
    count_parts,
    is_math,
    is_named_value,
    is_prose,
    option_letter,
    question_stems,
    reduce_math,
    stems,
    top_level_split,
    value_of,
    without_commands,
)

__all__ = [
    # where the answer is
    "Extract", "Found", "all_boxed", "answer_is", "answer_region", "answer_statements", "boxes", "braced",
    "final_answer", "has_box", "is_empty_answer", "last_boxed", "last_line", "strip_wrappers", "task_question",
    # the math final answer
    "RETRACTION", "FinalAnswer", "boxed_answer", "extract_answer", "find_final",
    # numbers and values
    "NUMBER", "SCIENTIFIC", "NumberList", "count_numbers", "parse_number", "parse_number_list", "plain_answer",
    "tex_thousands", "MATH_SPAN", "asked_stems", "count_parts", "is_math", "is_named_value", "is_prose",
    "option_letter", "question_stems", "reduce_math", "stems", "top_level_split", "value_of", "without_commands",
    # the question's own quantities
    "canon", "question_quantities", "restatement", "restates_question",
    # multiple choice
    "Choice", "choice_order", "choose",
    # gold answers and text normalisation
    "gold_answers", "gold_text", "gold_value", "normalize_text",
]
