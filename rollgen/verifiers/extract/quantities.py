"""The question's own quantities: what an answer that merely restates the question looks like.

An answer equal to the gold only because it copies a quantity the question writes (``\\boxed{6/8}`` for
"simplify 6/8 to lowest terms", ``2^{10}`` for "evaluate 2^{10}", ``0.75`` for "write 0.75 as a fraction") is
not a solution: ``restates_question`` tells the math verifier so, and ``restatement`` gives ``rollgen
validate`` such a quantity to test with.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from rollgen.verifiers.extract.numbers import parse_number
from rollgen.verifiers.extract.values import reduce_math, top_level_split

__all__ = ["canon", "question_quantities", "restatement", "restates_question"]

_PAREN_WORD = re.compile(r"\((\w+)\)")
_CANON_DROP = re.compile(r"\$|\\[,;!: ]|\\left|\\right|\\displaystyle|\s+")
_CANON_FRAC = re.compile(r"\\[dtc]?frac\{([^{}]*)\}\{([^{}]*)\}")
_OPERATOR = re.compile(r"[/^+*×÷]|\\frac|\\sqrt|\\cdot|\\times|(?<=\d)-(?=\d)")
_MATH_RUN = re.compile(r"[-+]?\d[\d.,]*(?:\s*[-+*/^×÷]\s*\(?[-+]?\d[\d.,]*\)?)+")
_QUESTION_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$]+)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
# A fraction or a power written in the question, whole (not the "7 / 7" inside "-7 / 7").
_QUANTITY = re.compile(r"(?<![-\w.])(?:\\[dt]?frac\s*\{\s*\d+\s*\}\s*\{\s*\d+\s*\}|\d+\s*/\s*\d+(?![\w.])"
                       r"|\d+\s*\^\s*\{?\s*\d{1,3}\s*\}?)")
_POWER = re.compile(r"(\d+)\s*\^\s*\{?\s*(\d{1,3})\s*\}?")


def canon(s: str) -> str:
    """Math as written, for comparing forms: wrappers and spaces dropped, ``\\frac{a}{b}`` as ``a/b``."""
    return _canon_short(s) if len(s) <= 64 else _canon(s)  # asked twice a rollout (answer, gold): short ones cached


def _canon(s: str) -> str:
    s = _CANON_FRAC.sub(r"(\1)/(\2)", _CANON_DROP.sub("", s))
    return _PAREN_WORD.sub(r"\1", s).replace("\\dfrac", "\\frac").rstrip(".,;:").lower()


_canon_short = functools.lru_cache(maxsize=16384)(_canon)


def question_quantities(question: str) -> set[str]:
    """What the question writes as math (``canon`` forms): each ``$...$`` and its sides of ``=``, each bare
    token with a digit, each run of arithmetic ("Calculate 7 / 7." writes ``7/7``)."""
    out = set()
    for m in _QUESTION_MATH.finditer(question):
        span = next(g for g in m.groups() if g is not None)
        out.update(canon(x) for x in [span, *top_level_split(span, "=")])
    plain = _QUESTION_MATH.sub(" ", question)
    out.update(canon(t) for t in plain.split() if any(c.isdigit() for c in t))
    out.update(canon(run) for run in _MATH_RUN.findall(plain))
    return out


def _kind(s: str) -> str:
    return "fraction" if "/" in s or "frac" in s else "decimal" if "." in s else "other"


def restates_question(answer: str, gold: str, question: str) -> bool:
    """Whether ``answer`` is a quantity copied from the question rather than the gold's form of it: an
    expression the question writes (``6/8``, ``2^{10}``, ``3 + 4 \\cdot 5``), or a decimal the question
    writes where the gold is a fraction (``0.75`` for "write 0.75 as a fraction"), that the gold does not."""
    if not question:
        return False
    a, g = canon(reduce_math(answer)), canon(gold)
    if not a or a == g or not (_OPERATOR.search(a) or _kind(a) != _kind(g) != "other" != _kind(a)):
        return False
    return a in question_quantities(question)


def _value(quantity: str) -> Fraction | None:
    if m := _POWER.fullmatch(quantity.strip()):
        base, exp = int(m[1]), int(m[2])
        return Fraction(base**exp) if exp <= 64 and base <= 10**6 else None
    return parse_number(quantity)


def restatement(question: str, gold: str) -> str | None:
    """A fraction or power the question writes that equals ``gold`` in another form (``17080/42490`` for
    ``244/607``), or None."""
    value = parse_number(gold)
    if value is None or not question:
        return None
    for m in _QUANTITY.finditer(question):
        quantity = m.group().strip()
        if canon(quantity) != canon(gold) and _value(quantity) == value:
            return quantity
    return None
