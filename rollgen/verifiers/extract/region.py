"""Where the answer is in a completion: the region after the reasoning, boxes, answer statements, the last line.

After the last ``</think>`` (``answer_region``), before a leaked chat-template tail (``<|im_start|>user``);
``\\boxed{}`` / ``\\fbox{}`` groups (``braced``, ``boxes``, ``last_boxed``, ``all_boxed``); "answer is X" /
"Answer: X" / a "Final Answer" heading (``answer_is``, ``answer_statements``); the last line; or a regex
group. Each scan starts from the end and is bounded, so a 100k-character completion takes microseconds.
``final`` builds the math verifier's final-answer rules on these.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rollgen.records import Task

__all__ = ["Extract", "Found", "all_boxed", "answer_is", "answer_region", "answer_statements", "boxes", "braced",
           "final_answer", "has_box", "is_empty_answer", "last_boxed", "last_line", "strip_wrappers",
           "task_question"]

Extract = Literal["auto", "boxed", "answer_is", "last_line", "full"]

MAX_CANDIDATES = 32  # \boxed / "answer" positions tried, from the end
MAX_BOXED_CHARS = 4096  # a longer (or unclosed) \boxed{ is not an answer

_BOX_CMDS = ("\\boxed", "\\fbox")
_BRACE = re.compile(r"[{}]")
_ANSWER_WORDS = ("answer", "Answer", "ANSWER")
_ANSWER_IS = re.compile(
    r"answer\**\s*(?:(?:is|would\s+be|should\s+be|will\s+be)\b|[:=]|(?=\**\s*\n)|(?=\s*(?:\$|\\\[|\\\()))\**\s*:?\**[ \t*]*(?P<nl>\n\s*)?"
    r"(?P<ans>[^\n]*)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|(?<=[^\d\s])\.(?=[A-Z])")
_TEMPLATE_TAIL = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end|user|assistant)\|>|<\|start_header_id\|>")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_WORD_START = re.compile(r"\d|(?<![\\A-Za-z])[A-Za-z]")  # a digit, or a letter that does not continue a \command
# Answers that say nothing: the "master keys" that fool LLM judges (arXiv 2507.08794) and bare openers.
OPENERS = frozenset({"thought process", "let s solve this problem step by step", "let s solve this step by step",
                     "let s think step by step", "let me think step by step", "solution", "answer", "final answer",
                     "the answer is", "the final answer is", "step 1"})
_WRAPPER_CMDS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class Found:
    """An answer found in a text: ``text`` and where its statement starts (the ``\\boxed`` command or the word
    "answer") and ends."""

    text: str
    start: int
    end: int


def answer_region(text: str) -> str:
    """The text after the last ``</think>`` (all of it when there is none), cut before a leaked chat-template
    turn (``<|im_start|>user ...``: a base model that went on writing the conversation)."""
    i = text.rfind("</think>")
    region = text[i + len("</think>") :] if i >= 0 else text
    if "<|" in region and (m := _TEMPLATE_TAIL.search(region)):
        region = region[: m.start()]
    return region


def braced(text: str, start: int) -> str | None:
    """The content of the balanced ``{...}`` group opening at ``start`` (after spaces), or None."""
    end = _braced_end(text, start)
    return None if end is None else text[text.index("{", start) + 1 : end]


def _braced_end(text: str, start: int) -> int | None:
    while start < len(text) and text[start] == " ":
        start += 1
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for m in _BRACE.finditer(text, start, start + MAX_BOXED_CHARS):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return m.start()
    return None  # unbalanced: truncated output


def has_box(text: str, end: int | None = None) -> bool:
    """Whether a ``\\boxed`` / ``\\fbox`` command starts in ``text[:end]`` (a cheap test before ``boxes``)."""
    stop = len(text) if end is None else end
    return any(text.find(c, 0, stop) >= 0 for c in _BOX_CMDS)


def boxes(text: str, limit: int = MAX_CANDIDATES) -> list[Found]:
    """The last ``limit`` balanced, non-empty ``\\boxed{...}`` / ``\\fbox{...}`` in the text, in order; a box
    nested in another is part of the outer one."""
    found: list[Found] = []
    end = len(text)
    for _ in range(limit * 2):
        i, cmd = max((text.rfind(c, 0, end), c) for c in _BOX_CMDS)
        if i < 0 or len(found) >= limit:
            break
        close = _braced_end(text, i + len(cmd))
        if close is not None and (content := text[text.index("{", i) + 1 : close].strip()):
            if not found or close < found[-1].start:  # not inside the box found after it
                found.append(Found(content, i, close + 1))
            elif found[-1].start > i:  # the later one was nested in this one
                found[-1] = Found(content, i, close + 1)
        end = i
    return found[::-1]


def last_boxed(text: str) -> str | None:
    """The content of the last non-empty, balanced ``\\boxed{...}`` or ``\\fbox{...}``."""
    found = boxes(text, limit=1)
    return found[0].text if found else None


def all_boxed(text: str, limit: int = MAX_CANDIDATES) -> list[str]:
    """The contents of the last ``limit`` balanced, non-empty boxes, in order."""
    return [b.text for b in boxes(text, limit)]


def answer_statements(text: str, accept: Callable[[str], bool] | None = None) -> Iterator[Found]:
    """"answer is X" / "Answer: X" / "**Final Answer**" + X on the next line, from the last backwards; X runs to
    the end of its sentence. ``accept`` skips statements whose X it rejects ("the answer is correct")."""
    end, words = len(text), _ANSWER_WORDS
    for _ in range(MAX_CANDIDATES):
        found = [(text.rfind(w, 0, end), w) for w in words]
        words = tuple(w for i, w in found if i >= 0)  # a spelling absent now stays absent
        if not words:
            return
        i = end = max(found)[0]
        if i and text[i - 1].isalnum():
            continue
        m = _ANSWER_IS.match(text, i)
        if not m or (m["nl"] is not None and not _heading(text, i)):
            continue
        start = m.start("ans")
        if text.startswith(("\\[", "$$"), start):  # display math may span lines: up to its closing delimiter
            close = text.find("\\]" if text[start] == "\\" else "$$", start + 2, start + MAX_BOXED_CHARS)
            raw = text[start : close + 2] if close >= 0 else m["ans"]
        else:
            raw = _SENTENCE_END.split(m["ans"], maxsplit=1)[0]
        ans = raw.strip().strip("*`").strip()
        if ans and (accept is None or accept(ans)):
            yield Found(ans, i, start + len(raw))


def _heading(text: str, i: int) -> bool:
    """Whether the word "answer" at ``i`` is a heading ("**Final Answer**", "### Answer"), not prose."""
    before = text[text.rfind("\n", 0, i) + 1 : i].strip(" \t#*>-_").lower()
    return before in ("", "final", "the final", "my final", "correct")


def answer_is(text: str) -> str | None:
    """X from the last "answer is X" / "Answer: X" / "Final answer: X" (up to the end of the sentence)."""
    return next((f.text for f in answer_statements(text)), None)


def last_line(text: str) -> str | None:
    """The last non-empty line, stripped."""
    for line in reversed(text.strip().splitlines()):
        if line.strip():
            return line.strip()
    return None


def final_answer(text: str, how: Extract = "auto") -> tuple[str | None, str]:
    """``(answer, rule)``: ``auto`` tries boxed, then "answer is", then the last line; ``full`` is the whole
    answer region, stripped. ``(None, "none")`` when nothing is there."""
    region = answer_region(text)
    rules = {
        "auto": (("boxed", last_boxed), ("answer_is", answer_is), ("last_line", last_line)),
        "boxed": (("boxed", last_boxed),),
        "answer_is": (("answer_is", answer_is),),
        "last_line": (("last_line", last_line),),
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


def task_question(task: Task) -> str:
    """What a task asks: its last user message (the prompt as the policy saw it), else its prompt."""
    for m in reversed(task.messages or []):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return task.prompt or ""


def is_empty_answer(text: str) -> bool:
    """No letter or digit outside LaTeX commands (``""``, ``":"``, ``\\boxed{}``), or only an opener."""
    if len(text) > 200:  # an opener is short; a long text is empty only if it has no word at all
        return _WORD_START.search(text) is None
    words = _NON_WORD.sub(" ", _LATEX_CMD.sub(" ", text).lower()).strip()
    return not words or words in OPENERS
