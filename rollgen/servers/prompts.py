"""The final-answer instruction: appended once, only to prompts that do not already say how to answer.

Task sources often carry their own instruction: reasoning-gym's gsm_symbolic ends with "Give the result
as your final answer.", chain_sum starts with "State the final answer to ...", gcd says "Give only the
GCD as your final answer.", time_intervals "Answer in HH:MM:SS.", and user files ask for ``\\boxed{}``.
``answer_instruction`` finds such an instruction (``\\boxed``, "final answer", "Answer:" / answer-format
lines, ``<answer>`` tags, "after ####", "reply only with ...", "your output should be ...", "provide your
answer as ..."); ``with_instruction`` appends the server's only where there is none.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from rollgen.records import Task

__all__ = ["answer_instruction", "instruction_twice", "prompt_checks", "with_instruction"]

_PATTERNS = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in (
    r"\\boxed\b",
    r"\bfinal\s+answer\b",
    r"<answer>",
    r"\bafter\s+['\"]?####|####\s*[<\[{(]?\s*(?:your\s+)?(?:final\s+)?(?:answer|number|result)\b",  # GSM8K style
    r"\banswer\s*(?:format\s*)?:",  # "Answer:", "Answer format:"
    r"\b(?:answer|output|response)\s+format\b",
    r"\bformat\s+(?:your|the)\s+(?:final\s+)?(?:answer|response|output|solution)\b",
    r"\byour\s+(?:final\s+)?(?:answer|response|output|solution)\s+(?:should|must)\b",
    r"\b(?:as|in)\s+your\s+(?:final\s+)?answer\b",
    r"\b(?:provide|give|write|present|return|express|state|put)\s+(?:you|your)\s+(?:final\s+)?answer\b",
    r"\b(?:reply|respond|answer|output)\b[^.\n]{0,25}?\b(?:only|just)\b",
    r"\b(?:only|just)\s+(?:reply|respond|answer|give|provide|return|output|write)\b",
    r"\b(?:give|provide|return|output|write|state)\s+(?:only|just)\b",
    r"(?:^|[.?!(:]\s*)(?:please\s+)?answer\s+(?:in|with|as|yes|true|only)\b",  # "Answer in HH:MM:SS.", "(Answer Yes or No)"
)]


_ANY = re.compile("|".join(f"(?:{p.pattern})" for p in _PATTERNS), re.IGNORECASE | re.MULTILINE)
_FENCED = re.compile(r"```.*?(?:```|$)", re.DOTALL)


def answer_instruction(text: str) -> str | None:
    """The first final-answer instruction found in ``text`` (the matched words), or None. Text inside ```
    fences is code or data the prompt shows (a docstring's "Return only positive numbers"), not an instruction."""
    norm = unicodedata.normalize("NFKC", text)
    if "```" in norm:
        norm = _FENCED.sub(" ", norm)
    # One scan for all patterns: the leftmost match, and at that place the first pattern in order, which is what
    # the earliest of each pattern's own first match is (a staged task costs one scan, not fourteen).
    m = _ANY.search(norm)
    return m.group(0).strip() if m else None


def with_instruction(text: str, instruction: str | None) -> str:
    """``text`` with ``instruction`` on a new line, unless it is None or ``text`` already has an instruction."""
    if not instruction or answer_instruction(text) is not None:
        return text
    return f"{text.rstrip()}\n{instruction}"


def _instructing(added: Iterable[str | None]) -> list[str]:
    """The pieces of ``added`` (text a server adds to prompts) that are a final-answer instruction."""
    return [a for a in added if a and a.strip() and answer_instruction(a) is not None]


def instruction_twice(text: str, added: Iterable[str | None]) -> bool:
    """Whether ``text`` carries a final-answer instruction the server added (``added``: its instruction, the
    fixed text of its prompt template) and, apart from that, one of its own."""
    mine = [a for a in _instructing(added) if a in text]
    if not mine:
        return False
    for a in mine:
        text = text.replace(a, " ")
    return answer_instruction(text) is not None


def prompt_checks(tasks: Iterable[Task], added: Iterable[str | None], examples: int = 3) -> dict[str, Any]:
    """What the prompts of ``tasks`` look like as sent: repeated prompts (normalised text, as splits group
    them), prompts with the server's final-answer instruction (``added``: the text the server adds, see
    ``ResourceServer.added_text``), with an instruction twice, and with none; a few task ids of each."""
    from rollgen.quality.text import prompt_key
    from rollgen.quality.view import prompt_text

    added = _instructing(added)
    seen: set[bytes] = set()
    counts = {"tasks": 0, "distinct_prompts": 0, "tasks_repeating_a_prompt": 0, "with_server_instruction": 0,
              "instruction_twice": 0, "no_answer_instruction": 0}
    ids: dict[str, list[str]] = {"tasks_repeating_a_prompt": [], "instruction_twice": [], "no_answer_instruction": []}

    def note(kind: str, task_id: str) -> None:
        counts[kind] += 1
        if len(ids[kind]) < examples:
            ids[kind].append(task_id)

    for task in tasks:
        counts["tasks"] += 1
        text = prompt_text(task.chat())
        key = prompt_key(text)
        if key in seen:
            note("tasks_repeating_a_prompt", task.id)
        seen.add(key)
        if any(a in text for a in added):
            counts["with_server_instruction"] += 1
        if instruction_twice(text, added):
            note("instruction_twice", task.id)
        elif answer_instruction(text) is None:
            note("no_answer_instruction", task.id)
    counts["distinct_prompts"] = len(seen)
    return {**counts, "examples": {k: v for k, v in ids.items() if v}}
