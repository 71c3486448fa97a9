"""The option a multiple-choice answer picks: a letter however it is written, or an option's own text.

``choose(text, letters, options)`` reads the answer region (after ``</think>``), trying in order:

1. the last ``\\boxed{}``: ``\\boxed{B}``, ``\\boxed{\\text{(B)}}``;
2. the last answer statement: "Answer: B", "The answer is (B).", "**Answer:** b", "Final answer: B) Paris",
   "the correct option is B", "I would choose B", "The answer is Paris." (an option's text);
3. a line that is only a letter: "B", "(B)", "**B**", "B.";
4. a line that starts with one option's label: "B) Paris", "(B) Paris", "B. Paris" (several such lines are a
   list of the options, not an answer);
5. the whole answer, or its last line, being one option's text;
6. letters in parentheses anywhere: "(B)".

A lowercase letter counts where it cannot be an article or a pronoun ("answer: b", "(b)", a line "b"); with
``options`` given, only their letters count ("Answer: I think B" is B among four options). The result is
``hedged`` when the statement names two letters ("A or B", "A/B", "B, C", "either A or C"), when a label's
text is another option's ("B) London" where B is Paris), or when step 6 finds different letters.

``choice_order(key, n)`` is the order options are shown in when a server shuffles them: a permutation of
``range(n)`` drawn from ``key`` alone (a task id, a seed and a repeat index), the same on every machine.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rollgen.verifiers.extract.answers import normalize_text
from rollgen.verifiers.extract.region import answer_region, answer_statements, last_boxed, strip_wrappers

__all__ = ["Choice", "choice_order", "choose"]

_STATEMENT = re.compile(
    r"(?:\b(?:correct|right|best)\s+(?:option|choice|letter)\s*(?:is|:)|\bI(?:'d|\s+would|\s+will)?\s+"
    r"(?:choose|pick|select|go\s+with))\s*(?:option\s+|choice\s+)?(?P<ans>[^\n]*)", re.IGNORECASE)
_OPTION_IS = re.compile(r"\b(?:option|choice)\s+\(?(?P<ans>[A-Za-z])\)?\s+is\s+(?:the\s+)?(?:correct|right|best)\b",
                        re.IGNORECASE)
_PREFIX = re.compile(r"^(?:(?:the\s+)?(?:option|choice|letter)\s*:?\s*)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_LABEL_LINE = re.compile(r"^[ \t>*_-]*(?:\(([A-Za-z])\)|([A-Za-z])[).:])[ \t]+(\S.*)$", re.MULTILINE)
_PAREN = re.compile(r"\(([A-Z])\)")
_LETTERS_ONLY = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
_LETTERS_ONLY_LINE = re.compile(r"(?:[\W_]|\b(?:or|and|either|maybe)\b|(?<![A-Za-z])[A-Z](?![A-Za-z]))+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Choice:
    """The letter picked (None: none found), the rule that found it, and whether the answer hedges."""

    letter: str | None
    rule: str
    hedged: bool = False


def choice_order(key: str, n: int) -> list[int]:
    """A permutation of ``range(n)`` determined by ``key`` alone: position i shows option ``order[i]``."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def _option_index(text: str, options: Sequence[str]) -> int | None:
    norm = normalize_text(strip_wrappers(text))
    if not norm:
        return None
    hits = [i for i, o in enumerate(options) if normalize_text(str(o)) == norm]
    return hits[0] if len(hits) == 1 else None


def _letter_of(s: str, valid: str) -> tuple[str | None, bool]:
    """The letter a short answer names, and whether it names two: "(B)", "b.", "B) Paris", "B or C"."""
    s = _PREFIX.sub("", strip_wrappers(s)).strip().strip("*`_").strip()
    letters = re.findall(r"(?<![A-Za-z'])([A-Za-z])(?![A-Za-z'])", s)
    upper = [x for x in letters if x in valid]
    if len(set(upper)) > 1 and re.search(
            rf"(?<![A-Za-z])[{valid}]\)?\s*(?i:,|/|;|&|\bor\b|\band\b)\s*(?i:(?:or|maybe|possibly|perhaps|also|even)\s+)?"
            rf"\(?[{valid}](?![A-Za-z])", s):
        return upper[-1], True
    m = re.match(r"[(\[{]*\s*([A-Za-z])(?![A-Za-z'])(.?)", s)
    if m:
        letter, after = m.group(1), m.group(2)
        if letter in valid and (letter.isupper() and not after.isalnum()):
            return letter, False
        if letter.islower() and letter.upper() in valid and after in ("", ")", "]", ".", ":", "*", ",", "}"):
            return letter.upper(), False
    if len(set(upper)) == 1 and (letter := upper[0]) not in "AI":  # "I think it is B"
        return letter, False
    return None, False


def choose(text: str, letters: str = "ABCDEFGHIJ", options: Sequence[str] | None = None) -> Choice:
    """The option ``text`` picks (see the module's rules). ``options``: the option texts, in the order shown."""
    region = answer_region(text)
    valid = letters[: len(options)] if options else letters
    candidates: list[tuple[str, str]] = []
    if (boxed := last_boxed(region)) is not None:
        candidates.append(("boxed", boxed))
    statement = _last_statement(region)
    if statement is not None:
        candidates.append(("answer_is", statement))
    for rule, found in candidates:
        if options and (i := _option_index(found, options)) is not None and i < len(valid):
            return Choice(valid[i], "option_text")
        letter, hedged = _letter_of(found, valid)
        if letter is not None:
            return Choice(letter, rule, hedged or _label_contradicts(found, letter, valid, options))
    lines = [ln.strip() for ln in region.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        m = re.fullmatch(r"[\W_]*([A-Za-z])[\W_]*", line)
        if m and (m.group(1) in valid or (m.group(1).islower() and m.group(1).upper() in valid)):
            return Choice(m.group(1).upper(), "letter_line")
    labelled = [(x, m.group(0).strip()) for m in _LABEL_LINE.finditer(region) if (x := (m.group(1) or m.group(2)).upper()) in valid]
    if len({x for x, _ in labelled}) > 1:
        return Choice(None, "options_listed", True)
    if labelled and not any(p != labelled[0][0] for p in _PAREN.findall(labelled[0][1])):
        letter, line = labelled[0]
        return Choice(letter, "label_line", _label_contradicts(line, letter, valid, options))
    if lines and len(set(_LETTERS_ONLY.findall(lines[-1]))) > 1 and _LETTERS_ONLY_LINE.fullmatch(lines[-1]):
        return Choice(None, "several_letters", True)
    if options:
        for cand in (region, lines[-1] if lines else ""):
            if (i := _option_index(cand, options)) is not None and i < len(valid):
                return Choice(valid[i], "option_text")
    found = [x for x in _PAREN.findall(region) if x in valid]
    if found:
        return Choice(found[-1], "parenthesised", len(set(found)) > 1)
    return Choice(None, "none")


def _last_statement(region: str) -> str | None:
    """The text after the last "answer is" / "correct option is" / "I choose", or the letter of "option B is
    correct", whichever comes last."""
    best: tuple[int, str] | None = None
    for found in answer_statements(region):
        best = (found.start, found.text)
        break
    for rx in (_STATEMENT, _OPTION_IS):
        for m in rx.finditer(region):
            ans = _SENTENCE_END.split(m.group("ans"), maxsplit=1)[0].strip().strip("*`").strip()
            if ans and (best is None or m.start() > best[0]):
                best = (m.start(), ans)
    return best[1] if best else None


def _label_contradicts(found: str, letter: str, valid: str, options: Sequence[str] | None) -> bool:
    """Whether "B) London ..." names another option's text than B's (the text starts with it)."""
    if not options:
        return False
    m = re.match(r"[\W_]*[A-Za-z][).:]?\s+(.+)$", strip_wrappers(found))
    if not m:
        return False
    said = normalize_text(m.group(1))
    norms = [normalize_text(str(o)) for o in options[: len(valid)]]
    starts = [i for i, o in enumerate(norms) if o and (said == o or said.startswith(o + " "))]
    return bool(starts) and valid.index(letter) not in starts
