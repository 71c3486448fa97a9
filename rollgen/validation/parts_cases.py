"""``rollgen validate`` cases for answers with parts and for the question's own quantity.

A multi-part gold (``2, -3``; a tuple ``(2, -1)``) gets the ways replies write several values: one box per
part, boxes side by side, "x = 2 or x = -3", named parts ``x = 2, y = -1``, a prose list "2, and -3" and
the list reordered (an unordered gold only); one part missing must score 0. An interval (``[2, 5)``) gets
its inequality ``2 \\le x < 5``. A question that writes a quantity equal to the gold in another form
(``17080/42490`` for ``244/607``, ``2^{10}`` for ``1024``) gets that quantity restated as the answer and
``quantity = ?``: both must score 0.
"""

from __future__ import annotations

import re

from rollgen.verifiers.extract import parse_number_list, restatement

__all__ = ["PART_RENDERINGS", "QUESTION_PERTURBATIONS", "part_renderings", "question_perturbations"]

PART_RENDERINGS = ("multi_box", "adjacent_boxes", "or_assignments", "named_parts", "prose_list", "reordered_list",
                   "inequality")
QUESTION_PERTURBATIONS = ("missing_part", "restated_question", "unparseable_rhs")

_NAMES = "xyzw"
_INTERVAL = re.compile(r"(?P<lo>[\[(])\s*(?P<a>[^,\[\]()]+?)\s*,\s*(?P<b>[^,\[\]()]+?)\s*(?P<hi>[\])])")
_INFINITY = re.compile(r"^[-+]?\s*(?:\\infty|∞|inf(?:inity)?)$")
def _parts(gold: str) -> list[str]:
    s = gold.strip().strip("$").strip()
    if s[:1] in "({[" and s[-1:] in ")}]":
        s = s[1:-1]
    return [p.strip() for p in re.split(r",\s*|;\s*", s.replace("\\{", "").replace("\\}", "")) if p.strip()]


def part_renderings(gold: str) -> dict[str, str]:
    """The multi-part and interval renderings that apply to ``gold`` (kind → completion)."""
    out: dict[str, str] = {}
    if (m := _INTERVAL.fullmatch(gold.strip().strip("$").strip())) and not (m["lo"] == "(" and m["hi"] == ")"):
        lo = "" if _INFINITY.match(m["a"]) else f"{m['a']} {'<' if m['lo'] == '(' else chr(92) + 'le'} "
        hi = "" if _INFINITY.match(m["b"]) else f" {'<' if m['hi'] == ')' else chr(92) + 'le'} {m['b']}"
        if lo or hi:
            out["inequality"] = f"The solution set is ${lo}x{hi}$."
        return out
    numbers = parse_number_list(gold)
    if numbers is None or len(numbers.values) < 2:
        return out
    parts = _parts(gold)
    if len(parts) != len(numbers.values):
        return out
    out["multi_box"] = "The solutions are " + " and ".join(f"\\boxed{{{p}}}" for p in parts) + "."
    out["adjacent_boxes"] = "".join(f"\\boxed{{{p}}}" for p in parts)
    out["prose_list"] = "The solutions are " + ", ".join(parts[:-1]) + f", and {parts[-1]}."
    if numbers.ordered and len(parts) <= len(_NAMES):
        out["named_parts"] = "\\boxed{" + ", ".join(f"{n} = {p}" for n, p in zip(_NAMES, parts)) + "}"
    elif not numbers.ordered:
        out["or_assignments"] = "The solutions are " + " or ".join(f"x = {p}" for p in parts) + "."
        if parts != parts[::-1]:
            out["reordered_list"] = "\\boxed{" + ", ".join(reversed(parts)) + "}"
    return out


def question_perturbations(question: str, gold: str) -> dict[str, str]:
    """The question's own quantity as the answer, when the question writes one equal to ``gold`` in another
    form; one part missing, for a multi-part gold."""
    out: dict[str, str] = {}
    numbers = parse_number_list(gold)
    if numbers is not None and len(numbers.values) >= 2:
        parts = _parts(gold)
        out["missing_part"] = "The answer is \\boxed{" + ", ".join(parts[:-1]) + "}."
    if quantity := restatement(question, gold):
        out["restated_question"] = f"The simplified answer is \\boxed{{{quantity}}}."
        out["unparseable_rhs"] = f"\\boxed{{{quantity} = ?}}"
    return out
