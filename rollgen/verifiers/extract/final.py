"""The final answer of a math completion: what it states as its result, not merely its last number.

The answer is the last *statement* of a value, in this order of strength:

* ``boxed``: the last ``\\boxed{}`` group (several boxes joined by "and", ",", ``\\quad`` or ``x_2 =`` are one
  multi-part answer: ``\\boxed{2}`` and ``\\boxed{-3}`` is ``2, -3``);
* ``answer_is``: "The answer is X", "Answer: X", a "**Final Answer**" heading; when X is a sentence ("The
  volume is 120.", "15 students take the bus") its value is taken from it;
* ``conclusion``: a sentence that concludes ("Therefore, ...", "So she has 15 apples left after giving 8 to her
  brother."), a sentence stating a value ("The total is 15."), or a line of math that ends the text.

A later explicit statement wins over an earlier one. A later conclusion with another value wins over a box
only when the text retracts ("Wait, that is wrong") or the box was not part of an answer statement (an
intermediate result); a self-check line ("Check: 15 + 8 = 23") never does. A short reply is its own answer
(``short``). Anything else states no answer (``none``): a long text whose last number happens to equal the
gold is not rewarded.

A statement's value is read by ``values``: the right side of ``=`` when the left is a name or
arithmetic (``x = 5``, ``3 + 4 = 7``; not an equation like ``x^2 + y^2 = 1``), the value after "is"/"has", a
list of values ("1, 2, and 3", "x = 2 or x = -3") kept together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rollgen.verifiers.extract.region import Found, answer_region, answer_statements, boxes
from rollgen.verifiers.extract.numbers import parse_number_list
from rollgen.verifiers.extract.values import (
    MATH_SPAN,
    count_parts,
    is_math,
    is_named_value,
    option_letter,
    question_stems,
    reduce_math,
    stems,
    value_of,
    without_commands,
)

__all__ = ["RETRACTION", "FinalAnswer", "boxed_answer", "extract_answer", "find_final"]

_TAIL_CHARS = 4000  # conclusions are looked for in the last 4,000 characters
_SHORT_CHARS = 120  # a one-sentence reply this short is its own answer
_MAX_GAP = 70  # characters between two boxes of one multi-part answer


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """``answer``: the stated value (parts of a multi-part answer joined by ", "), None when nothing is stated.
    ``rule``: boxed | answer_is | conclusion | short | none. ``statement``: the sentence that states it (the
    hedging guard reads it); ``start``/``end``: where that statement is in the answer region."""

    answer: str | None
    rule: str
    statement: str = ""
    start: int = -1
    end: int = -1
    parts: int = 0


NONE = FinalAnswer(None, "none")

_GAP_SEPARATOR = re.compile(r"\b(?:and|or)\b|,|;")
# A sentence ends at ".", "!" or "?" (and closing quotes, brackets, "$") before a space and a capital, a digit
# or math; after display math before a capital; and at a line break.
_SENTENCE = re.compile(r"([.!?][\"')\]*$]*|\$\$|\\\])(\s+)|\n+")
_STARTS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$\\(*\"'-")
_DISPLAY = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]", re.DOTALL)
_CONCLUDES = re.compile(
    r"^(?:therefore|thus|hence|so|consequently|in total|in all|altogether|overall|finally|in conclusion|as a result|"
    r"this means|that means|which means|in summary|to summarize|all in all|the final|∴|\\therefore)\b", re.IGNORECASE)
_CHECK = re.compile(r"^(?:check(?:ing)?|verif(?:y|ication|ying)|double[- ]check|sanity check|let'?s (?:check|verify)|"
                    r"let me (?:check|verify|double)|to (?:check|verify)|indeed|proof|✓|\(check)", re.IGNORECASE)
_STATES = re.compile(
    r"\b(?:is|are|was|were|equals?|has|have|had|gets?|costs?|totals?|comes? to|remains?|left|needs?|makes?|will be|"
    r"would be)\b[^.]{0,40}?(?:\d|\\frac|\\sqrt|\$)|=\s*[^=]{0,60}$", re.IGNORECASE)
RETRACTION = re.compile(
    r"\b(?:wait|oops|hmm+|actually|mistake|incorrect|wrong|not (?:right|correct)|miscalculat\w*|recalculat\w*|"
    r"recomput\w*|let me (?:redo|correct|fix|reconsider|re-?check)|correction|I apologi[sz]e|error)\b", re.IGNORECASE)
# A side remark, not a conclusion: "(If she had bought 4 packs, she would have 24.)", "For example, ...".
_ASIDE = re.compile(r"^(?:\(|if\b|suppose\b|assume\b|for example\b|e\.g\.|note\b|hint\b|alternatively\b|"
                    r"for instance\b|similarly\b)", re.IGNORECASE)
_CHOSEN_OPTION = re.compile(r"\b(?:option|choice|answer)\s+(?:is|would be)\s*:?\s*\(?(?P<letter>[A-J])\)(?![\w(])")
_HAS_VALUE = re.compile(r"\d|\\(?:frac|sqrt|pi|infty)|\$[^$]*\$|\b(?:zero|one|two|three|four|five|six|seven|eight|"
                        r"nine|ten|eleven|twelve|twenty)\b", re.IGNORECASE)
_LEAD = re.compile(r"^(?:[\s*#>•]|-(?=\s))+|^\d+\.\s+(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    start: int
    end: int


def _sentences(region: str, offset: int) -> list[_Sentence]:
    """The sentences of ``region`` (display math kept whole), with positions shifted by ``offset``."""
    work = _DISPLAY.sub(lambda m: m.group().replace("\n", " ").replace(". ", ".\u00a0"), region) if (
        "$$" in region or "\\[" in region) else region
    out, pos = [], 0
    for m in _SENTENCE.finditer(work):
        if m.group(1) is not None:
            after = work[m.end() : m.end() + 1]
            if not (after in _STARTS if m.group(1)[0] in ".!?" else after.isupper()) or not after:
                continue
            cut = m.end(1)
        else:
            cut = m.start()
        if cut > pos:
            out.append(_Sentence(region[pos:cut], offset + pos, offset + cut))
        pos = m.end()
    if pos < len(region):
        out.append(_Sentence(region[pos:], offset + pos, offset + len(region)))
    return [s for s in out if s.text.strip()]


def _has_value(text: str) -> bool:
    return _HAS_VALUE.search(text) is not None


def _states_answer(text: str) -> bool:
    """What "the answer is" may be followed by: a value, or a choice letter."""
    return _has_value(text) or option_letter(text.strip("*` ")) is not None


def _weak(region: str, after: int, question: str | None) -> FinalAnswer | None:
    """The last sentence after ``after`` that states a value: it concludes ("Therefore, ..."), is math, or
    says "X is 15" about something the question asks about. Value-free sentences ("I hope it is correct.") and
    check lines are passed over; at most four sentences with values are looked at. Sentences are split from
    the end, a short tail first."""
    for size in _TAILS:
        start = max(after, len(region) - size)
        if start > after:
            start = _boundary(region, start)
        found, seen = _weak_in(_sentences(region[start:], start), question)
        if found is not None or seen >= 4 or start == after:
            return found
    return None


_TAILS = (600, _TAIL_CHARS)


def _boundary(region: str, start: int) -> int:
    """``start``, or when that is inside ``$...$`` the first line or sentence break after it outside math (a
    tail cut inside math would pair the wrong dollars)."""
    if region.count("$", 0, start) % 2 == 0:
        return start
    i = start
    while True:
        breaks = [k for k in (region.find("\n", i), region.find(". ", i)) if k >= 0]
        if not breaks:
            return start
        j = min(breaks) + 1
        if region.count("$", 0, j) % 2 == 0:
            return j
        i = j


def _weak_in(sentences: list[_Sentence], question: str | None) -> tuple[FinalAnswer | None, int]:
    seen = 0
    asked = question_stems(question) if question else None
    for s in reversed(sentences):
        if seen >= 4:
            break
        text = _LEAD.sub("", s.text).strip()
        if m := _CHOSEN_OPTION.search(text):  # "The correct option is (B)."
            return FinalAnswer(m["letter"], "conclusion", s.text.strip(), s.start, s.end, 1), seen
        if not _has_value(text) or _CHECK.match(text) or _ASIDE.match(text):
            continue
        seen += 1
        concludes = _CONCLUDES.match(text) is not None
        math = is_math(MATH_SPAN.sub(" ", text))
        # A bare number in prose must be about what the question asks ("A week has 7 days." is not); a value in
        # $...$ is a result the text works out.
        states = _STATES.search(text) is not None and (asked is None or bool(asked & stems(text))
                                                       or MATH_SPAN.search(text) is not None)
        if concludes or math or states:
            value, parts = value_of(text, question)
            if value is not None:
                return FinalAnswer(value, "conclusion", s.text.strip(), s.start, s.end, parts), seen
    return None, seen


def _joined(region: str, before: Found, after: Found) -> bool:
    """Whether two boxes are parts of one answer (math-verify's rule, without retractions): less than ten
    characters apart, or a different value within 70 characters with "and", "or", "," or ";" between, no
    sentence break and at most four words."""
    gap = region[before.end : after.start]
    if len(gap) > _MAX_GAP or RETRACTION.search(gap) or re.search(r"[.!?]\s+[A-Z]", gap):
        return False
    if len(gap.strip()) < 10:
        return True
    return (before.text != after.text and _GAP_SEPARATOR.search(gap) is not None
            and len(re.findall(r"(?<![\\A-Za-z])[A-Za-z]{2,}", without_commands(gap))) <= 4)


def boxed_answer(text: str) -> FinalAnswer | None:
    """The last box group of ``text`` (boxes joined as in ``_joined``), or None when there is no box."""
    found = boxes(text, limit=8)
    if not found:
        return None
    group = [found[-1]]
    for b in reversed(found[:-1]):
        if not _joined(text, b, group[0]):
            break
        group.insert(0, b)
    if len(group) == 1:
        contents = [reduce_math(group[0].text)]
    else:  # "k = 45" and "n = 2" keep their names
        contents = [b.text if is_named_value(b.text) else reduce_math(b.text) for b in group]
    parts = sum(count_parts(c) for c in contents)
    line_start = text.rfind("\n", 0, group[0].start) + 1
    line_end = text.find("\n", group[-1].end)
    statement = text[line_start : len(text) if line_end < 0 else line_end].strip()
    return FinalAnswer(", ".join(contents), "boxed", statement, group[0].start, group[-1].end, parts)


def _differs(a: str, b: str) -> bool:
    x, y = parse_number_list(a), parse_number_list(b)
    if x is not None and y is not None:
        return not x.same(y)
    return re.sub(r"\s+", "", a) != re.sub(r"\s+", "", b)


# Inline math cannot span lines: "$ \n 9 \n $" is not math (display math "\[ \n 9 \n \]" is).
_BROKEN_INLINE = re.compile(r"(?<![\\$])\$[ \t]*\n[^$]*?\n[ \t]*\$(?!\$)|\\\([ \t]*\n.*?\n[ \t]*\\\)", re.DOTALL)


_VALUE_IS_ANSWER = re.compile(r"(?P<value>\$[^$\n]{1,60}\$|\\boxed\{[^{}\n]{1,60}\}|-?[\w.,/{}\\^]{1,40})\s+"
                              r"(?:is|would be|will be)\s+(?:the|my|our)\s+(?:final\s+|correct\s+)?$", re.IGNORECASE)


def _value_is_answer(region: str) -> Found | None:
    """The last "X is the answer" / "X is the final answer" whose X is a value (the words "answer" from the end,
    each with the 120 characters before it)."""
    end = len(region)
    for _ in range(8):
        i = region.rfind("answer", 0, end)
        if i < 0:
            return None
        end = i
        window_start = max(0, i - 120)
        m = _VALUE_IS_ANSWER.search(region, window_start, i)
        if m is not None and _has_value(m["value"]) and not region[i + 6 : i + 7].isalpha():
            return Found(m["value"], m.start(), i + 6)
    return None


def _sentence_start(region: str, i: int) -> int:
    starts = [region.rfind("\n", 0, i) + 1, *(m.end() for m in re.finditer(r"[.!?]\s+", region[max(0, i - 300) : i]))]
    return max(starts[0], max((max(0, i - 300) + x for x in starts[1:]), default=0))


def find_final(text: str, question: str | None = None) -> FinalAnswer:
    """The final answer stated in ``text`` (after ``</think>``), by the rules in the module's docstring.
    ``question``: the task's question; a sentence that states a value without concluding must be about
    something it asks about ("A week has 7 days." does not answer how many cows there are). The last few
    results are cached: the guards and the verifier read the same completion."""
    return _find_final(text, question)


@lru_cache(maxsize=256)
def _find_final(text: str, question: str | None) -> FinalAnswer:
    region = answer_region(text)
    if "\n" in region and ("$" in region or "\\(" in region):
        region = _BROKEN_INLINE.sub(lambda m: " " * len(m.group()), region)
    if not region.strip():
        return NONE
    box = boxed_answer(region)
    stated = next(answer_statements(region, accept=_states_answer), None)
    if (named := _value_is_answer(region)) is not None and (stated is None or named.start > stated.end):
        stated = named  # "3 is the answer to 3 + 4, which is 7": the answer is 3
    explicit: FinalAnswer | None = None
    in_statement = False
    if stated is not None:
        if box is not None and stated.start <= box.start <= stated.end + 2:
            in_statement = True
            explicit = FinalAnswer(box.answer, "boxed", region[_sentence_start(region, stated.start) : box.end],
                                   stated.start, box.end, box.parts)
        elif box is None or stated.start > box.end:
            value, parts = value_of(stated.text, question)
            if value is not None:
                sentence = region[_sentence_start(region, stated.start) : stated.end]
                explicit = FinalAnswer(value, "answer_is", sentence, stated.start, stated.end, parts)
                in_statement = True
    if explicit is None and box is not None:
        explicit = box
    if explicit is not None and not _HAS_VALUE.search(region, explicit.end):
        return explicit  # nothing after the answer could replace it
    if explicit is None:
        short = region.strip()
        if len(short) <= _SHORT_CHARS and len(_sentences(short, 0)) == 1:  # one sentence, nothing else
            value, parts = value_of(short, question)
            if value is not None:
                start = region.find(short)
                return FinalAnswer(value, "short", short, start, start + len(short), parts)
        return _weak(region, 0, question) or NONE
    weak = _weak(region, explicit.end, question)
    if (weak is not None and weak.answer and _CONCLUDES.match(_LEAD.sub("", weak.statement))
            and _differs(weak.answer, explicit.answer or "")):
        if RETRACTION.search(region, explicit.end, weak.start) or (explicit.rule == "boxed" and not in_statement):
            return weak
    return explicit


def extract_answer(text: str, question: str | None = None) -> tuple[str | None, str]:
    """``(answer, rule)`` of ``find_final``: the stated final answer and the rule that found it (``boxed``,
    ``answer_is``, ``conclusion``, ``short``), or ``(None, "none")``."""
    final = find_final(text, question)
    return final.answer, final.rule
