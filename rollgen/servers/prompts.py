"""The final-answer instruction: appended once, only to prompts that do not already say how to answer.

Task sources often carry their own instruction: reasoning-gym's gsm_symbolic ends with "Give the result
as your final answer.", chain_sum starts with "State the final answer to ...", gcd says "Give only the
GCD as your final answer.", time_intervals "Answer in HH:MM:SS.", and user files ask for ``\\boxed{}``.
``answer_instruction`` finds such an instruction (``\\boxed``, "final answer", "Answer:" / answer-format
lines, ``<answer>`` tags, ``####``, "reply only with ...", "your output should be ...", "provide your
answer as ..."); ``with_instruction`` appends the server's only where there is none.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["answer_instruction", "instruction_twice", "with_instruction"]

_PATTERNS = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in (
    r"\\boxed\b",
    r"\bfinal\s+answer\b",
    r"<answer>",
    r"####",
    r"\banswer\s*(?:format\s*)?:",  # "Answer:", "Answer format:"
    r"\b(?:answer|output|response)\s+format\b",
    r"\bformat\s+(?:your|the)\s+(?:final\s+)?(?:answer|response|output|solution)\b",
    r"\byour\s+(?:final\s+)?(?:answer|response|output|solution)\s+(?:should|must)\b",
    r"\b(?:as|in)\s+your\s+(?:final\s+)?answer\b",
    r"\b(?:provide|give|write|present|return|express|state|put)\s+(?:you|your)\s+(?:final\s+)?answer\b",
    r"\b(?:reply|respond|answer|output)\b[^.\n]{0,25}?\b(?:only|just)\b",
    r"\b(?:only|just)\s+(?:reply|respond|answer|give|provide|return|output|write)\b",
    r"\b(?:give|provide|return|output|write|state)\s+(?:only|just)\b",
    r"(?:^|[.(:]\s*)answer\s+(?:in|with|as|yes|true|only)\b",  # "Answer in HH:MM:SS.", "(Answer Yes or No)"
)]


def answer_instruction(text: str) -> str | None:
    """The first final-answer instruction found in ``text`` (the matched words), or None."""
    norm = unicodedata.normalize("NFKC", text)
    found = [m for p in _PATTERNS if (m := p.search(norm))]
    if not found:
        return None
    return min(found, key=lambda m: m.start()).group(0).strip()


def with_instruction(text: str, instruction: str | None) -> str:
    """``text`` with ``instruction`` on a new line, unless it is None or ``text`` already has an instruction."""
    if not instruction or answer_instruction(text) is not None:
        return text
    return f"{text.rstrip()}\n{instruction}"


def instruction_twice(text: str, instruction: str | None) -> bool:
    """Whether ``text`` carries ``instruction`` and, apart from it, a final-answer instruction of its own."""
    if not instruction or instruction not in text:
        return False
    return answer_instruction(text.replace(instruction, " ")) is not None
