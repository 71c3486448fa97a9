"""Gold answers as the verifiers compare them, and the normalised text a string comparison sees.

``task.answer`` may be a string, a number, a list of acceptable answers or an object: ``gold_text`` gives
one value as text (a string as it is, a list or object as JSON, a number as ``str``), ``gold_answers`` the
acceptable answers (a list means any of them), ``gold_value`` the value a worked solution arrives at (its
last ``\\boxed{}`` group or its stated final answer). ``normalize_text`` is the SQuAD-style normalisation
that keeps numbers intact.
"""

from __future__ import annotations

import json
import re
import unicodedata

from rollgen.verifiers.extract.final import boxed_answer, find_final
from rollgen.verifiers.extract.region import strip_wrappers
from rollgen.verifiers.extract.values import is_prose

__all__ = ["gold_answers", "gold_text", "gold_value", "normalize_text"]

SOLUTION_CHARS = 80  # a gold answer longer than this, in prose, is a worked solution: its final answer is the gold

_PUNCT = re.compile(r"[-+](?=\d)|(?<=\d)[./](?=\d)|([^\w\s])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_SPACES = re.compile(r"\s+")


def gold_text(answer: object) -> str:
    """One gold answer as text: a string as it is, a list or object as JSON, anything else as ``str``.
    Raises ValueError when there is none."""
    if answer is None:
        raise ValueError("the task has no ground-truth 'answer'")
    if isinstance(answer, str):
        return answer
    if isinstance(answer, (dict, list, tuple)):
        return json.dumps(answer, ensure_ascii=False)
    return str(answer)


def gold_answers(answer: object) -> list[str]:
    """A task's acceptable answers as texts (``gold_text``): a list means any of them. Raises when there is none."""
    if answer is None:
        raise ValueError("the task has no ground-truth 'answer'")
    return [gold_text(a) for a in answer] if isinstance(answer, (list, tuple)) else [gold_text(answer)]


def gold_value(gold: str) -> str:
    """The value a gold answer states: a worked solution's last box group (``\\boxed{2}, \\boxed{3}`` → ``2, 3``)
    or stated final answer, else the text."""
    if "\\boxed" in gold or "\\fbox" in gold:
        found = boxed_answer(gold)
        return found.answer if found is not None and found.answer else gold
    if len(gold) > SOLUTION_CHARS and is_prose(gold):
        return find_final(gold).answer or gold
    return gold


def normalize_text(s: str, *, lowercase: bool = True, articles: bool = True) -> str:
    """SQuAD-style normalisation that keeps numbers intact: NFKC, wrappers and punctuation dropped
    (but not a number's sign, decimal point or fraction bar), ``1,000`` → ``1000``, lowercase,
    articles removed, whitespace collapsed."""
    s = strip_wrappers(unicodedata.normalize("NFKC", s).replace("\u2212", "-"))
    s = _THOUSANDS.sub("", s)
    if lowercase:
        s = s.lower()
    s = _PUNCT.sub(lambda m: " " if m.group(1) else m.group(0), s)
    if articles and (without := _ARTICLES.sub(" ", s)).strip():  # "A" alone is a letter, not an article
        s = without
    return _SPACES.sub(" ", s).strip()
