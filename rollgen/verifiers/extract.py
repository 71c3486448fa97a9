"""Where the answer is in a completion: after the last ``</think>``, in the last ``\\boxed{}``, after
"answer is" / "Answer:", on the last line, or in a regex group. Shared by the cookbook verifiers and guards."""

from __future__ import annotations

import re
from typing import Literal

from rollgen.verifiers.math import _answer_is, _last_boxed

__all__ = ["Extract", "all_boxed", "answer_region", "final_answer", "gold_answers", "is_empty_answer", "strip_wrappers"]

Extract = Literal["auto", "boxed", "answer_is", "last_line", "full"]

_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_WORD_START = re.compile(r"\d|(?<![\\A-Za-z])[A-Za-z]")  # a digit, or a letter that does not continue a \command
# Answers that say nothing: the "master keys" that fool LLM judges (arXiv 2507.08794) and bare openers.
OPENERS = frozenset({"thought process", "let s solve this problem step by step", "let s solve this step by step",
                     "let s think step by step", "let me think step by step", "solution", "answer", "final answer",
                     "the answer is", "the final answer is", "step 1"})
_WRAPPER_CMDS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def answer_region(text: str) -> str:
    """The text after the last ``</think>`` (all of it when there is none)."""
    i = text.rfind("</think>")
    return text[i + len("</think>") :] if i >= 0 else text


def _last_line(text: str) -> str | None:
    for line in reversed(text.strip().splitlines()):
        if line.strip():
            return line.strip()
    return None


def final_answer(text: str, how: Extract = "auto") -> tuple[str | None, str]:
    """``(answer, rule)``: ``auto`` tries boxed, then "answer is", then the last line; ``full`` is the whole
    answer region, stripped. ``(None, "none")`` when nothing is there."""
    region = answer_region(text)
    rules = {
        "auto": (("boxed", _last_boxed), ("answer_is", _answer_is), ("last_line", _last_line)),
        "boxed": (("boxed", _last_boxed),),
        "answer_is": (("answer_is", _answer_is),),
        "last_line": (("last_line", _last_line),),
        "full": (("full", lambda t: t.strip() or None),),
    }[how]
    for rule, find in rules:
        ans = find(region)
        if ans:
            return ans, rule
    return None, "none"


def strip_wrappers(s: str) -> str:
    """Drop ``$``/``\\(``, ``\\text{}`` wrappers and a trailing period: ``$\\text{Paris}$.`` → ``Paris``."""
    s = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ("`", "`")):
        if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : -len(right)].strip()
    s = _WRAPPER_CMDS.sub(r"\1", s)
    return s.rstrip(".").strip()


def gold_answers(answer: object) -> list[str]:
    """A task's acceptable answers as strings: a list means any of them. Raises when there is none."""
    if answer is None:
        raise ValueError("the task has no ground-truth 'answer'")
    items = answer if isinstance(answer, (list, tuple)) else [answer]
    return [x if isinstance(x, str) else str(x) for x in items]


def is_empty_answer(text: str) -> bool:
    """No letter or digit outside LaTeX commands (``""``, ``":"``, ``\\boxed{}``), or only an opener."""
    if len(text) > 200:  # an opener is short; a long text is empty only if it has no word at all
        return _WORD_START.search(text) is None
    words = _NON_WORD.sub(" ", _LATEX_CMD.sub(" ", text).lower()).strip()
    return not words or words in OPENERS


def all_boxed(text: str, limit: int = 32) -> list[str]:
    """The contents of every balanced, non-empty ``\\boxed{}``/``\\fbox{}``, in order (at most ``limit``)."""
    from rollgen.verifiers.math import _braced

    out: list[str] = []
    i = 0
    while len(out) < limit:
        found = [j for j in (text.find("\\boxed", i), text.find("\\fbox", i)) if j >= 0]
        if not found:
            break
        j = min(found)
        start = j + (6 if text.startswith("\\boxed", j) else 5)
        content = _braced(text, start)
        if content is not None and content.strip():
            out.append(content.strip())
        i = start
    return out
