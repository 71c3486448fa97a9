"""The value a sentence or a piece of math states: ``value_of("So she has 15 apples left after giving 8 to her
brother.")`` is ``15``; ``reduce_math("3 + 4 = 7")`` is ``7``.

A sentence's values are its math spans (``$...$`` and friends), numbers (with thousands separators, decimal
commas, fractions, mixed numbers, scientific notation, percentages), bare LaTeX (``\\frac{1}{2}``,
``5\\sqrt{2}``), intervals and inequalities, and number words when there is nothing else. Values joined by
",", "and", "or", ``\\quad`` (with ``x =`` names) are one multi-part value ("x = 2 or x = -3"). Of several,
the sentence's answer is the result of ``=``; else the one followed by what the question asks about; else the
last after "is"/"has"/"a total of"; else a value the sentence starts with ("15 students take the bus");
else the last. ``final`` finds the sentence.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rollgen.verifiers.extract.numbers import tex_thousands

__all__ = ["MATH_SPAN", "asked_stems", "count_parts", "is_math", "is_named_value", "is_prose", "option_letter", "question_stems",
           "reduce_math", "stems", "top_level_split", "value_of", "without_commands"]

MATH_SPAN = re.compile(r"\$\$(?P<a>.+?)\$\$|\\\[(?P<b>.+?)\\\]|\\\((?P<c>[^\n]+?)\\\)"
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


_OPTION = re.compile(r"^(?:\((?P<p>[A-J])\)(?:\s+\S.*)?|(?P<l>[A-J])(?:[.:)](?:\s+\S.*)?)?)$")


def option_letter(s: str) -> str | None:
    """The choice letter ``s`` is (``B``, ``(B)``, ``(B) 7``, ``B. 7``), or None."""
    m = _OPTION.match(s)
    return None if m is None else m["p"] or m["l"]


def is_named_value(s: str) -> bool:
    """Whether ``s`` is one ``name = value`` (``k = 45``, ``x_1 = 2``)."""
    return _NAMED_VALUE.match(s) is not None


def without_commands(s: str) -> str:
    """``s`` without LaTeX commands and their one-word arguments (``\\text{ and }``, ``\\quad``)."""
    return _COMMAND_ARG.sub(" ", s)


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
        for m in MATH_SPAN.finditer(s):
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
    if letter := option_letter(s):  # "B", "(B)", "(B) 7", "B. 7": a choice
        return letter, 1
    outside = MATH_SPAN.sub(" ", s)
    if is_math(outside):
        math = MATH_SPAN.sub(lambda m: _math_content(m), s).strip().rstrip(":").strip()
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
def question_stems(question: str) -> frozenset[str]:
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
