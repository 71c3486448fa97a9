"""Exact numbers as people and models write them: ``-3``, ``0.25``, ``3/4``, ``\\frac{3}{4}``, ``3 1/2`` and
``3\\frac{1}{2}`` (mixed numbers), ``1,000`` and LaTeX's thousands separators (``14{,}916``, ``1\\,000\\,000``,
``11,\\!111``), decimal commas (``2,74``), scientific notation (``1.2 \\times 10^3``), with ``$``, ``x =``, ``%``,
degrees and trailing units stripped; and lists of them (``2, -3``; ``x = 2 or x = -3``; ``(2, -1)``).

Everything here is pure Python and takes microseconds; anything that is not a plain number (radicals,
intervals, expressions) is ``None`` and left to math-verify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["NUMBER", "SCIENTIFIC", "NumberList", "count_numbers", "parse_number", "parse_number_list", "plain_answer",
           "tex_thousands"]

MAX_NUMBER_CHARS = 100  # longer "numbers" are left to math-verify

# One number in running text: a grouped integer (1,000 / 14{,}916 / 1\,000 / 11,\!111) or plain digits, an
# optional decimal part, an optional "/denominator"; not glued to a word or another number.
_SEP = r"(?:,|\{,\}|,\\!|\\,|\\ )"
NUMBER = re.compile(
    rf"(?<![\w.])-?(?:[1-9]\d{{0,2}}(?:{_SEP}\d{{3}})+(?![\d]|\{{,\}})|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)?"
)
_TEX_THOUSANDS = re.compile(r"(?<=\d)\s*(?:\{\s*,\s*\}|,\\!|\\[,!;: ])\s*(?=\d{3}(?!\d))")

_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?")
_GROUPED = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_SPACED = re.compile(r"[-+]?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?")
_DECIMAL_COMMA = re.compile(r"(?P<a>[-+]?\d+),(?P<b>\d+)")
_SLASH = re.compile(r"(?P<a>[-+]?[\d.]+)\s*/\s*(?P<b>[-+]?[\d.]+)")
_TEX_FRAC = re.compile(r"(?P<sign>[-+]?)\\[dtc]?frac(?:\{(?P<a>[^{}]+)\}\{(?P<b>[^{}]+)\}|(?P<a1>\d)(?P<b1>\d))")
_MIXED = re.compile(r"(?P<sign>[-+]?)(?P<w>\d+)(?:\s+(?P<n>\d+)\s*/\s*(?P<d>\d+)"
                    r"|\s*\\[dt]?frac\{(?P<n2>\d+)\}\{(?P<d2>\d+)\})")
SCIENTIFIC = re.compile(r"(?P<m>[-+]?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|×|·|\*)\s*10\s*\^\s*"
                         r"(?:\{\s*(?P<e1>[-+]?\d{1,3})\s*\}|(?P<e2>[-+]?\d{1,3}))")
_WRAPPERS = re.compile(r"\\\$|\$|\\[(),\[\]!; ]|\\left|\\right|\{,\}|\*\*")
_TRAILING_UNIT = re.compile(
    r"(?:\s*\\(?:text|textrm|textnormal|mathrm|mbox|textbf|operatorname)\s*\{[^{}]*\}(?:\^\s*\{?\d\}?)?"
    r"|\s*\\?%|\s*\^\s*\{?\\circ\}?|\s*°|\s*(?:\\,|\\ |~))$"
)
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*")
_UNIT_WORDS = re.compile(r"^(?P<num>.*?\d)\s*(?P<words>[A-Za-z]{2,}\.?(?:[\s-]+[A-Za-z]{2,}\.?){0,3})\s*[.!]?$")
_MATH_WORDS = frozenset({"pi", "sqrt", "inf", "infinity", "and", "or", "to", "times", "plus", "minus", "over", "mod",
                         "sin", "cos", "tan", "log", "ln", "exp", "cdot", "frac", "dfrac", "tfrac", "e", "i",
                         "hundred", "thousand", "million", "billion", "trillion", "dozen", "hundreds", "thousands",
                         "millions", "billions", "dozens", "squared", "cubed", "root", "roots"})


def tex_thousands(s: str) -> str:
    """LaTeX thousands separators as plain commas: ``14{,}916``, ``11,\\!111`` → ``14,916``, ``11,111``;
    ``1\\,000\\,000`` → ``1,000,000``."""
    return _TEX_THOUSANDS.sub(",", s) if "\\" in s or "{" in s else s


def plain_answer(text: str) -> str:
    """``text`` with what is not the answer's value removed: ``$``/``\\(`` wrappers, a trailing period, units
    (``\\text{cm}``, ``apples``, ``%``, degrees), ``x =``, LaTeX spacing; the numbers stay as written
    (``\\frac{6}{8}`` is not reduced)."""
    s = text.strip().replace("\u2212", "-")
    s = _WRAPPERS.sub("", tex_thousands(s)).strip().rstrip(".").strip()
    while (stripped := _TRAILING_UNIT.sub("", s)) != s:
        s = stripped.rstrip()
    s = _ASSIGNMENT.sub("", s)
    m = _UNIT_WORDS.match(s)
    if m and not {w.rstrip(".").lower() for w in re.split(r"[\s-]+", m["words"])} & _MATH_WORDS:
        s = m["num"]
    s = s.strip().rstrip(".").strip()
    if s.startswith("{") and s.endswith("}") and s.count("{") == 1:
        s = s[1:-1].strip()
    return s


def _plain_fraction(s: str) -> Fraction | None:
    s = s.strip()
    if _GROUPED.fullmatch(s):
        s = s.replace(",", "")
    elif _SPACED.fullmatch(s):
        s = s.replace(" ", "")
    elif m := _DECIMAL_COMMA.fullmatch(s):
        a, b = m["a"], m["b"]
        if not (a.lstrip("+-") == "0" or len(b) == 2 or len(a.lstrip("+-")) >= 4):
            return None  # "1,2" is a list as often as a number
        s = f"{a}.{b}"
    if not _DECIMAL.fullmatch(s):
        return None
    return _decimal(s)


def _decimal(s: str) -> Fraction:
    """``Fraction(s)`` of a string ``_DECIMAL`` matched; a plain ASCII integer without Fraction's own parser."""
    digits = s[1:] if s[:1] in ("+", "-") else s
    return Fraction(int(s)) if digits.isascii() and digits.isdigit() else Fraction(s)


def parse_number(text: str) -> Fraction | None:
    """``text`` as an exact number when it is plain (see the module's docstring), else None."""
    s = text.strip().replace("\u2212", "-")
    if len(s) > MAX_NUMBER_CHARS:
        return None
    if _DECIMAL.fullmatch(s):  # the common case, without the clean-up below
        return _decimal(s)
    s = plain_answer(s)
    try:
        if (value := _plain_fraction(s)) is not None:
            return value
        if m := _SLASH.fullmatch(s) or _TEX_FRAC.fullmatch(s):
            a, b = (m["a"], m["b"]) if m["a"] is not None else (m["a1"], m["b1"])
            num, den = _plain_fraction(a), _plain_fraction(b)
            if num is None or den is None or den == 0:
                return None
            value = num / den
            return -value if m.groupdict().get("sign") == "-" else value
        if m := _MIXED.fullmatch(s):
            n, d = int(m["n"] or m["n2"]), int(m["d"] or m["d2"])
            if not 0 < n < d:
                return None  # "3 4/2" is not a mixed number
            value = int(m["w"]) + Fraction(n, d)
            return -value if m["sign"] == "-" else value
        if m := SCIENTIFIC.fullmatch(s):
            return Fraction(m["m"]) * Fraction(10) ** int(m["e1"] or m["e2"])
    except (ValueError, ZeroDivisionError):  # e.g. more digits than int() accepts
        return None
    return None


_NAME_RUNS = ("abcd", "pqrs", "uvw", "wxyz", "xyz")


@dataclass(frozen=True, slots=True)
class NumberList:
    """The numbers of a multi-part answer; ``ordered`` when written as a tuple ``(2, -1)`` or as assignments to
    different names (``x = 2, y = -1``), where position matters."""

    values: tuple[Fraction, ...]
    ordered: bool = False
    names: tuple[str | None, ...] = ()

    def same(self, other: NumberList) -> bool:
        """Equal as answers: in order when either side is ordered (by name when both name every part),
        else as multisets."""
        if len(self.values) != len(other.values):
            return False
        if self._named() and other._named():
            return dict(zip(self.names, self.values)) == dict(zip(other.names, other.values))
        if self.ordered or other.ordered:
            return self._as_tuple() == other._as_tuple()
        return sorted(self.values) == sorted(other.values)

    def _named(self) -> bool:
        return all(self.names) and len(set(self.names)) == len(self.names) > 1

    def _as_tuple(self) -> tuple[Fraction, ...]:
        """The values as a tuple: named x, y, z (or a, b, c; x_1, x_2) in the order of their names, so
        ``y = -1, x = 2`` is ``(2, -1)``; other names as written."""
        if not self._named():
            return self.values
        names = sorted(str(n) for n in self.names)
        if not any("".join(names) in run for run in _NAME_RUNS) and not all(re.fullmatch(r"[a-z]_\{?\d+\}?", n)
                                                                              for n in names):
            return self.values
        return tuple(v for _, v in sorted(zip(self.names, self.values), key=lambda nv: str(nv[0])))


_LIST_SPLIT = re.compile(r"\s*(?:,\s*(?:\\text\s*\{\s*(?:and|or)\s*\}|and|or)\s+|;|,(?!\d{3}(?!\d))|\\quad|\\qquad"
                         r"|\\text\s*\{\s*(?:,\s*)?(?:and|or)\s*\}|\band\b|\bor\b|&)\s*")
_NAMED = re.compile(r"^(?P<name>[A-Za-z](?:_\{?\w+\}?)?)\s*=\s*(?P<value>.+)$")


def parse_number_list(text: str) -> NumberList | None:
    """The numbers of a multi-part answer, or None when a part is not a plain number. A single number gives a
    one-element list. ``\\{1, 2\\}`` and ``1, 2, and 3`` are unordered; ``(2, -1)`` and ``x = 2, y = -1``
    ordered."""
    s = text.strip().replace("\u2212", "-")
    if len(s) > 40 * MAX_NUMBER_CHARS:
        return None
    s = _WRAPPERS.sub(lambda m: "" if m.group() not in ("\\(", "\\)") else m.group(), tex_thousands(s)).strip()
    if s.endswith(("...", "\\ldots", "\\dots", "\\cdots")):
        return None  # "1, 2, 3, ..." goes on
    s = s.rstrip(".").strip()
    ordered = False
    if len(s) > 2 and s[0] == "(" and s[-1] == ")" and "(" not in s[1:-1]:
        s, ordered = s[1:-1], True
    elif s.startswith("\\{") and s.endswith("\\}"):
        s = s[2:-2]
    elif len(s) > 2 and s[0] == "{" and s[-1] == "}" and "{" not in s[1:-1]:
        s = s[1:-1]
    values: list[Fraction] = []
    names: list[str | None] = []
    for part in _LIST_SPLIT.split(s):
        if not part:
            continue
        m = _NAMED.match(part)
        name, part = (m["name"], m["value"]) if m else (None, part)
        value = parse_number(part)
        if value is None:
            return None
        values.append(value)
        names.append(name)
    if not values:
        return None
    distinct_names = all(names) and len(set(names)) == len(names) > 1
    return NumberList(tuple(values), ordered or distinct_names, tuple(names))


_TEX_FRAC_ANY = re.compile(r"\\[dtc]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_MIXED_TEXT = re.compile(r"(?<![\w./])\d+\s+\d+/\d+(?![\w/])")
_SCIENTIFIC_TEXT = re.compile(SCIENTIFIC.pattern)


def count_numbers(text: str) -> int:
    """How many numbers ``text`` states: ``14{,}916``, ``1.2 \\times 10^3``, ``3 1/2`` and ``\\frac{1}{2}`` are one
    each."""
    s = _TEX_FRAC_ANY.sub(r"\1/\2", tex_thousands(text.replace("\u2212", "-")))
    s = _SCIENTIFIC_TEXT.sub("1", s)
    s = _MIXED_TEXT.sub("1", s)
    return len(NUMBER.findall(s))
