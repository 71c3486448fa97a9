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

The value of a statement is reduced the same way everywhere: the right side of ``=`` when the left is a name
or arithmetic (``x = 5``, ``3 + 4 = 7``; not an equation like ``x^2 + y^2 = 1``), the value after "is"/"has",
and a list of values ("1, 2, and 3", "x = 2 or x = -3") kept together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rollgen.verifiers.extract import Found, answer_region, answer_statements, boxes
from rollgen.verifiers.numbers import parse_number_list, tex_thousands

__all__ = ["RETRACTION", "FinalAnswer", "asked_stems", "boxed_answer", "count_parts", "extract_answer", "find_final", "is_math", "is_prose", "reduce_math", "stems", "top_level_split", "value_of"]

_TAIL_CHARS = 4000  # conclusions are looked for in the last 4,000 characters
_SHORT_CHARS = 120  # a reply this short (one or two lines) is its own answer
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

# ---------------------------------------------------------------- values in a sentence

_MATH_SPAN = re.compile(r"\$\$(?P<a>.+?)\$\$|\\\[(?P<b>.+?)\\\]|\\\((?P<c>[^\n]+?)\\\)"
                        r"|(?<![\\$])\$(?P<d>(?:\\.|[^$\n\\])+?)\$",
                        re.DOTALL)
_NUM = r"-?(?:[1-9]\d{0,2}(?:(?:,|\{,\}|,\\!|\\,)\d{3})+(?!\d)|\d+)(?:\.\d+)?"
_REL = r"(?:<=?|>=?|≤|≥|\\l(?:e|t|eq)\b|\\g(?:e|t|eq)\b)"
_VALUE = re.compile(
    r"(?=[-\d\[(\\a-z])(?:"
    rf"(?P<ineq>(?:{_NUM}\s*{_REL}\s*)?[a-z]\s*{_REL}\s*{_NUM})"
    rf"|(?P<interval>[\[(]\s*-?(?:{_NUM}|\\infty|∞)\s*,\s*-?(?:{_NUM}|\\infty|∞)\s*[\])])"
    rf"|(?P<sci>{_NUM}\s*(?:\\times|×|·|\\cdot|\*)\s*10\s*\^\s*(?:\{{\s*-?\d+\s*\}}|-?\d+))"
    r"|(?P<tex>-?(?:\d+(?:\.\d+)?\s*)?(?:\\(?:[dtc]?frac|sqrt|pi|infty)(?:\[\d+\])?(?:\s*\{[^{}]*\})*)+)"
    rf"|(?P<mixed>(?<![\w.^/]){_NUM}\s+\d+/\d+(?![\d/]))"
    r"|(?P<comma>(?<![\w.,])(?:0,\d+|\d+,\d\d)(?![\d,]))"
    rf"|(?P<num>(?<![\w.^/\\]){_NUM}(?:/\d+(?:\.\d+)?)?(?:\s*%)?)(?![\d^]|[A-Za-z](?![A-Za-z²³]))"
    r")"
)
_WORD_NUMBER = re.compile(
    r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b", re.IGNORECASE)
_WORD_VALUES = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split())}
_WORD_VALUES.update(thirty="30", forty="40", fifty="50", sixty="60", seventy="70", eighty="80", ninety="90")
_NAME = r"[A-Za-z](?:_\{?\w+\}?|\([A-Za-z0-9]\))?"
_SEPARATOR = r"(?:,|;|\b(?:and|or)\b|&|\\quad|\\qquad|\\text\s*\{\s*,?\s*(?:and|or)\s*\})"
_JOIN = re.compile(rf"(?:\s*{_SEPARATOR})+\s*(?:{_NAME}\s*=\s*)?$")
_GAP_SEPARATOR = re.compile(r"\b(?:and|or)\b|,|;")
_NAMED_VALUE = re.compile(rf"^\s*{_NAME}\s*=\s*[^=]+$")
_NAME_BEFORE = re.compile(rf"(?<![\w\\]){_NAME}\s*=\s*$")
_EQ_BEFORE = re.compile(r"(?:=|\\approx|≈)\s*$")
_COPULA_BEFORE = re.compile(
    r"\b(?:is|are|was|were|be|equals?|equal to|makes?|gives?|yields?|has|have|had|gets?|got|costs?|totals?|"
    r"comes? to|remains?|left|needs?|takes?|earns?|pays?|spends?|sells?|buys?|reads?|uses?|saves?|receives?|"
    r"contains?|holds?|weighs?|measures?|becomes?|answer|result|by|(?:total|sum|product|difference|quotient|value) of|"
    r"(?:it|that|this|there|here)'s)\b[:,]?\s*"
    r"(?:exactly|about|approximately|around|roughly|only|now|still|a total of|in total|the|just|\\\$|\$)?\s*$",
    re.IGNORECASE)
_COMMAND_ARG = re.compile(r"\\[A-Za-z]+\s*(?:\{[^{}]*\})?")
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_MATH_WORDS = frozenset({"and", "or", "sqrt", "frac", "dfrac", "tfrac", "cdot", "times", "infty", "sin", "cos", "tan",
                         "log", "exp", "text", "quad", "qquad", "left", "right", "approx", "pmatrix", "bmatrix"})


_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_QUOTES = re.compile(r"\\?[\"`“”]")
_MATH_TEXT_WORDS = frozenset({"and", "or", "so", "then", "thus", "hence", "ie"})


def is_math(s: str) -> bool:
    """Whether ``s`` is math only: no word of two or more letters outside LaTeX commands and their arguments,
    but "and", "or", "so", "thus" ("x = 2 or x = -3", "3x > 6, so x > 2")."""
    return all(w.lower() in _MATH_TEXT_WORDS for w in _WORD.findall(_COMMAND_ARG.sub(" ", s)))


def _math_content(m: re.Match) -> str:
    return next(g for g in m.groups() if g is not None).strip()


def is_prose(s: str) -> bool:
    """Whether ``s`` has words of prose (two or more; not LaTeX commands or their arguments, not "and"/"or")."""
    s = _COMMAND_ARG.sub(" ", s)
    return sum(w.lower() not in _MATH_WORDS for w in _PROSE_WORD.findall(s)) >= 2


def _tokens(s: str) -> list[tuple[int, int, str]]:
    """Values in ``s`` as ``(start, end, text)``: math spans (``$...$`` and friends), then numbers and bare
    LaTeX outside them, then number words when there is nothing else. A ``$...$`` that holds prose is a pair
    of dollar amounts, not math."""
    out: list[tuple[int, int, str]] = []
    masked = s
    if "$" in s or "\\(" in s or "\\[" in s:
        for m in _MATH_SPAN.finditer(s):
            content = _math_content(m)
            if m["d"] is not None and is_prose(content):
                continue
            if _MATHY.search(content):
                out.append((m.start(), m.end(), content))
            masked = masked[: m.start()] + " " * (m.end() - m.start()) + masked[m.end() :]
    for m in _VALUE.finditer(masked):
        text = m.group()
        if m["mixed"] is not None:
            whole, frac = text.split(None, 1)
            num, den = frac.split("/")
            if int(num) >= int(den):  # "3 4/2": two values
                out.append((m.start(), m.start() + len(whole), whole))
                out.append((m.end() - len(frac), m.end(), frac))
                continue
        out.append((m.start(), m.end(), text.strip()))
    if not out:
        out = [(m.start(), m.end(), _WORD_VALUES[m.group().lower()]) for m in _WORD_NUMBER.finditer(s)]
    return sorted(out)


_MATHY = re.compile(r"\d|\\[A-Za-z]|[=<>≤≥]")


def value_of(sentence: str, question: str | None = None) -> tuple[str | None, int]:
    """The value a sentence states and how many parts it has: ``("120", 1)`` for "The volume is 120 cubic
    units.", ``("x = 2, x = -3", 2)`` for "The roots are x = 2 or x = -3.", ``(None, 0)`` for no value.

    Of several values: the result of ``=``; else the one followed by what ``question`` asks about ("25
    students walk and 15 take the bus" for "How many take the bus?"; the question's own numbers are passed
    over); else the last one after "is"/"has"/"a total of"; else a value the sentence starts with; else the
    last."""
    s = _QUOTES.sub(" ", sentence.replace("**", "").replace("__", "")).replace("\u2212", "-").strip()
    if not s:
        return None, 0
    if m := _OPTION.match(s):  # "B", "(B)", "(B) 7", "B. 7": a choice
        return m["p"] or m["l"], 1
    outside = _MATH_SPAN.sub(" ", s)
    if is_math(outside):
        math = _MATH_SPAN.sub(lambda m: _math_content(m), s).strip().rstrip(":").strip()
        math = _CONNECTOR.split(math)[-1]  # "3x > 6, so x > 2": what follows the last "so"
        if _LIST_WORDS.search(math) and len(top_level_split(_LIST_WORDS.sub(",", math), ",")) > 1:
            math = ", ".join(x.strip() for x in top_level_split(_LIST_WORDS.sub(",", _strip_end(math)), ","))
        return reduce_math(math), count_parts(math)
    tokens = _tokens(s)
    if not tokens:
        return None, 0
    groups: list[list[tuple[int, int, str]]] = [[tokens[0]]]
    for tok in tokens[1:]:
        gap = s[groups[-1][-1][1] : tok[0]]
        if len(gap) <= 40 and _JOIN.match(gap):
            groups[-1].append(tok)
        else:
            groups.append([tok])
    chosen = _choose(s, groups, question)
    if len(chosen) == 1:
        text = chosen[0][2]
        return reduce_math(text), count_parts(text)
    parts = []
    for start, _, text in chosen:
        name = _NAME_BEFORE.search(s[max(0, start - 12) : start])
        parts.append(f"{name.group().strip()} {reduce_math(text)}" if name else reduce_math(text))
    return ", ".join(parts), len(parts)


_STOPWORDS = frozenset("the and are was were what which when where many much does did have has with that this there "
                       "their they them from each more than into also then will would could should about after before "
                       "total number find how you your for its give only final answer result value".split())
_CONTENT = re.compile(r"[A-Za-z]{3,}")
_ASKS = re.compile(r"(?:[^.?!\n]|\.(?=\d))*\?")


def stems(text: str) -> set[str]:
    """Content words of ``text``, lower-cased, a plural "s" dropped."""
    return {w.lower().rstrip("s") for w in _CONTENT.findall(text) if w.lower() not in _STOPWORDS}


@lru_cache(maxsize=1024)
def _question_stems(question: str) -> frozenset[str]:
    return frozenset(stems(question))


@lru_cache(maxsize=1024)
def asked_stems(question: str) -> frozenset[str]:
    """The content words of what ``question`` asks (its last sentence with a "?", else all of it)."""
    asks = _ASKS.findall(question)
    return frozenset(stems(asks[-1] if asks else question))


Group = list[tuple[int, int, str]]


def _choose(s: str, groups: list[Group], question: str | None) -> Group:
    """Which of a sentence's value groups is its answer (see ``value_of``)."""
    if len(groups) == 1:
        return groups[0]

    def before(g: Group) -> str:
        return s[max(0, g[0][0] - 40) : g[0][0]]

    if equals := [g for g in groups if _EQ_BEFORE.search(before(g))]:
        return equals[-1]
    fresh = groups
    if question:  # "2.5 hours is 150 minutes": 2.5 is the question's, 150 the answer
        given = _given(question)
        fresh = [g for g in groups if len(g) > 1 or g[0][2].replace(" ", "") not in given] or groups
        asked = asked_stems(question)
        scores = [len(asked & stems(_CLAUSE_END.split(s[g[-1][1] : _next_start(groups, g, len(s))], maxsplit=1)[0]))
                  for g in fresh]
        best = max(scores)
        if best and scores.count(best) == 1:
            return fresh[scores.index(best)]
    if copulas := [g for g in groups if _COPULA_BEFORE.search(before(g))]:
        return copulas[-1]
    lead = s[: groups[0][0][0]].strip(" *:-,([")
    return groups[0] if not _PROSE_WORD.search(lead) else groups[-1]


def _next_start(groups: list[Group], g: Group, end: int) -> int:
    later = [h[0][0] for h in groups if h[0][0] > g[-1][1]]
    return min(later, default=end)


_CLAUSE_END = re.compile(r"[,;.:!?]|\b(?:and|or|so|but|which|while|is|are|was|were|be)\b")


@lru_cache(maxsize=1024)
def _given(question: str) -> frozenset[str]:
    """The numbers a question gives, as written."""
    return frozenset(m.group().replace(" ", "") for m in _VALUE.finditer(question[-2000:]))


_APPROX = re.compile(r"\\approx|≈")
_LHS_NAME = re.compile(rf"^\s*(?:{_NAME}|[A-Za-z]+\([^()]*\)|\\angle\s*\w+|[A-Z]{{1,3}}|\\[a-z]+(?:_\{{?\w+\}}?)?)\s*$")
_LHS_ARITH = re.compile(r"^[\s\d.,+\-*/×÷·()\[\]{}^%]*(?:\\(?:[dtc]?frac|cdot|times|div|sqrt|left|right|\$|%)"
                        r"[\s\d.,+\-*/()\[\]{}^]*)*$")
_VARIABLE = re.compile(r"(?<![\\A-Za-z])[A-Za-z](?![A-Za-z])")
_COMMANDS = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+")


def top_level_split(s: str, sep: str) -> list[str]:
    """``s`` split at ``sep`` outside braces and brackets (the ``=`` of ``\\sum_{k=0}`` or ``\\le`` stays)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch == sep and depth <= 0:
            if sep == "=" and (s[i - 1 : i] in ("<", ">", "!", ":", "\\", "=") or s[i + 1 : i + 2] == "="):
                continue
            out.append(s[start:i])
            start = i + 1
    out.append(s[start:])
    return out


def _strip_end(s: str) -> str:
    """Sentence punctuation off the end, but not an ellipsis (``1, 2, 3, ...`` is not ``1, 2, 3``)."""
    s = s.strip()
    if s.endswith(("...", "\\ldots", "\\dots", "\\cdots")):
        return s
    return s[:-1].rstrip() if s[-1:] in ".,;" else s


def reduce_math(text: str) -> str:
    """The value of a piece of math: the last side of ``a = b = c`` when it is free of variables and the
    sides before it are names or arithmetic (``x = 5`` → ``5``, ``3 + 4 = 7`` → ``7``), without a trailing
    ``\\approx 0.33``; unchanged for an equation (``y = 2x + 3``, ``x^2/4 + y^2 = 1``) or a list."""
    s = _strip_end(text)
    if "=" not in s and not _APPROX.search(s):
        return s
    if len(top_level_split(_THOUSANDS_COMMA.sub("", s), ",")) > 1:
        return s  # "x = 2, y = -1": a multi-part answer, kept whole
    sides = top_level_split(s, "=")
    last = sides[-1]
    if _APPROX.search(last):
        before, after = _APPROX.split(last, maxsplit=1)
        if len(sides) == 1:
            sides, last = [before], after  # "x \approx 11": the approximation is the value
        else:
            last = before  # "x = 1/3 \approx 0.33": the exact value
    if len(sides) > 1 and not all(_LHS_NAME.match(x) or _LHS_ARITH.match(x) for x in sides[:-1]):
        return s
    if _VARIABLE.search(_COMMANDS.sub(" ", last)):
        return s
    return last.strip() or s


_CONNECTOR = re.compile(r"(?:,\s*|\s+)(?:so|thus|hence|therefore|then|i\.e\.|which gives|giving)\s+",
                        re.IGNORECASE)
_LIST_WORDS = re.compile(r"\s*,?\s*(?:\\text\s*\{\s*,?\s*(?:and|or)\s*\}|\b(?:and|or)\b)\s*")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def count_parts(math: str) -> int:
    """How many values a piece of math lists (commas, "and", "or" at depth 0; not thousands separators)."""
    s = _LIST_WORDS.sub(",", _THOUSANDS_COMMA.sub("", tex_thousands(math)))
    return max(1, sum(1 for part in top_level_split(s.replace(";", ","), ",") if part.strip()))


# ---------------------------------------------------------------- statements in a text

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
_OPTION = re.compile(r"^(?:\((?P<p>[A-J])\)(?:\s+\S.*)?|(?P<l>[A-J])(?:[.:)](?:\s+\S.*)?)?)$")
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
    return _has_value(text) or _OPTION.match(text.strip("*` ")) is not None




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
    asked = _question_stems(question) if question else None
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
        math = is_math(_MATH_SPAN.sub(" ", text))
        # A bare number in prose must be about what the question asks ("A week has 7 days." is not); a value in
        # $...$ is a result the text works out.
        states = _STATES.search(text) is not None and (asked is None or bool(asked & stems(text))
                                                       or _MATH_SPAN.search(text) is not None)
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
            and len(re.findall(r"(?<![\\A-Za-z])[A-Za-z]{2,}", _COMMAND_ARG.sub(" ", gap))) <= 4)


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
        contents = [b.text if _NAMED_VALUE.match(b.text) else reduce_math(b.text) for b in group]
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
