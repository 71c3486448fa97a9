"""Guards against reward hacking: cheap checks that run before any verifier (``guards`` config group).

A rollout that trips a guard scores 0 with ``verifier: guards`` and ``reward_details.guards`` naming each
guard it tripped, and the verifier is not called (no judge tokens spent on it). The guards:

* ``truncated``: ``finish_reason == "length"``, the answer was cut off;
* ``too_long``: more than ``max_chars`` characters;
* ``empty``: nothing after ``</think>`` but whitespace, punctuation, ``\\boxed{}`` or an opener ("Let's solve
  this problem step by step.", the judge "master keys");
* ``copied_from_prompt``: at least ``copy_threshold`` of the completion's sentences are the prompt's;
* ``repetition``: a long completion that compresses below ``min_compression_ratio`` (a loop);
* ``hedging``: several candidate answers: boxes with other values that are neither retracted nor used by
  the work after them, a final statement with "or", "maybe", "likely", "between 90 and 110", or more values
  in the final answer than the gold has ("3, 7, 12" for 7; ``14{,}916`` and ``1.2 \\times 10^3`` are one
  value, "x = 2 or x = -3" two).

``rollgen validate`` shows which guard catches which perturbation, and whether the verifier alone would
have caught it too.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from typing import Any

from rollgen.config import GuardsConfig
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier, verifier_name, verify
from rollgen.verifiers.extract import (
    RETRACTION,
    FinalAnswer,
    answer_region,
    boxes,
    count_parts,
    final_answer,
    find_final,
    gold_answers,
    has_box,
    is_empty_answer,
    parse_number_list,
    reduce_math,
    task_question,
)

__all__ = ["GUARDS", "Guarded", "check", "guard_verdict"]

GUARDS = ("truncated", "too_long", "empty", "copied_from_prompt", "repetition", "hedging")

_ALTERNATION = re.compile(r"\b(?:or|either|maybe|possibly|perhaps|probably)\b", re.IGNORECASE)
_HEDGE_WORDS = re.compile(
    r"\b(?:either|maybe|possibly|perhaps|probably|likely|might be|could (?:also )?be|not sure|unsure|I guess|"
    r"(?:somewhere )?between\s+\S{1,30}\s+and\s+\S{1,30})\b", re.IGNORECASE)
# "or" next to a word, not between two values ("none of these or 2, -3"; "x = 2 or x = -3" is two values).
_OTHER_ALTERNATIVE = re.compile(r"(?<![\\\w])[A-Za-z]{2,}\s+or\b(?!\s+[a-z](?:_\w+)?\s*=)|\bor\s+(?![a-z](?:_\w+)?\s*=)[A-Za-z]{2,}",
                                re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_SPACE = re.compile(r"\s+")
_HEDGE_TAIL = 200  # characters after the final statement read for second thoughts ("... or maybe 8")


def _prompt_text(task: Task) -> str:
    parts = [task.prompt or ""]
    for m in task.messages or []:
        if m.get("role") in ("user", "system") and isinstance(m.get("content"), str):
            parts.append(m["content"])
    return _SPACE.sub(" ", "\n".join(parts)).lower()


def _copied_share(completion: str, prompt: str) -> float:
    """Share of the completion's characters in sentences that appear verbatim in the (normalised) prompt."""
    total = copied = 0
    for sentence in _SENTENCES.split(completion.lower()):
        s = " ".join(sentence.split())
        if not s:
            continue
        total += len(s)
        if len(s) >= 8 and s in prompt:
            copied += len(s)
    return copied / total if total else 0.0


@lru_cache(maxsize=4096)  # gold answers: the same few strings for every rollout of a task
def _values(answer: str) -> int:
    """How many values an answer has: ``(2, -1)`` two, ``14{,}916`` and ``1.2 \times 10^3`` one."""
    numbers = parse_number_list(answer)
    return len(numbers.values) if numbers is not None else count_parts(answer)


def _unused_boxes(region: str, final: FinalAnswer) -> int:
    """Boxes before the final answer with another value that are neither retracted ("Wait, that is wrong")
    nor used by the work after them (an intermediate result ``\boxed{4}`` followed by ``4 \times 5``)."""
    if final.answer is None or not has_box(region, final.start):
        return 0  # no box before the final answer (the common case): nothing to look at
    extra = set()
    for b in boxes(region, limit=16):
        if b.end > final.start:
            break
        value = _SPACE.sub("", reduce_math(b.text))
        after = region[b.end : final.start]
        if value == _SPACE.sub("", final.answer) or value in extra or RETRACTION.search(after):
            continue
        if re.search(rf"(?<![\d.]){re.escape(value)}(?![\d.])", _SPACE.sub("", after)):
            continue  # used later: an intermediate result
        extra.add(value)
    return len(extra)


def _hedge(text: str, region: str, golds: list[str], question: str) -> str | None:
    gold_values = max((_values(g) for g in golds), default=1)
    final = find_final(text, question)  # positions are in the answer region, as ``region``
    if final.answer is None:  # no math answer: the generic last box / "answer is" (text answers)
        answer, rule = final_answer(region)
        if answer is not None and rule in ("boxed", "answer_is") and _ALTERNATION.search(answer) and not any(
                _ALTERNATION.search(g) for g in golds):
            return f"the final answer hedges: {answer[:80]!r}"
        return None
    if extra := _unused_boxes(region, final):
        return f"{extra + 1} different \\boxed{{}} answers"
    zone = final.statement + " " + region[final.end : final.end + _HEDGE_TAIL]
    if (m := _HEDGE_WORDS.search(zone)) and not any(_HEDGE_WORDS.search(g) or _ALTERNATION.search(g) for g in golds):
        return f"the final answer hedges ({m.group()!r}): {final.statement[:80]!r}"
    if (m := _OTHER_ALTERNATIVE.search(final.statement)) and not any(_ALTERNATION.search(g) for g in golds):
        return f"the final answer offers an alternative ({m.group()!r}): {final.statement[:80]!r}"
    if final.parts > gold_values:
        return f"{final.parts} values in the final answer where the gold answer has {gold_values}: {final.answer[:80]!r}"
    return None


def check(cfg: GuardsConfig, task: Task, rollout: Rollout) -> list[tuple[str, str]]:
    """Every guard ``rollout`` trips, as ``(guard, reason)``; empty when it is clean or guards are off."""
    if not cfg.enabled:
        return []
    text = rollout.completion or ""
    region = answer_region(text)
    trips: list[tuple[str, str]] = []
    if cfg.truncated and (rollout.finish_reason == "length" or rollout.status == "truncated"):
        trips.append(("truncated", "the output was cut off (finish_reason=length)"))
    if cfg.max_chars is not None and len(text) > cfg.max_chars:
        trips.append(("too_long", f"{len(text)} characters, over guards.max_chars={cfg.max_chars}"))
    if cfg.empty and is_empty_answer(region):
        trips.append(("empty", "no answer after </think>" if region.strip() == "" else f"no answer: {region.strip()[:40]!r}"))
    if cfg.copied_from_prompt and len(text.strip()) >= cfg.copy_min_chars:
        prompt = _prompt_text(task)
        # A completion many times the prompt's length is mostly not the prompt (a loop of it is `repetition`).
        share = _copied_share(text, prompt) if len(text) <= 4 * len(prompt) + 200 else 0.0
        if share >= cfg.copy_threshold:
            trips.append(("copied_from_prompt", f"{share:.0%} of the completion is the prompt's text"))
    if cfg.repetition and len(text) >= cfg.repetition_min_chars:
        raw = text.encode("utf-8", "replace")
        ratio = len(zlib.compress(raw, 6)) / len(raw)
        if ratio < cfg.min_compression_ratio:
            trips.append(("repetition", f"compresses to {ratio:.3f} of its size (a loop)"))
    if cfg.hedging:
        golds = gold_answers(task.answer) if task.answer is not None else []
        if reason := _hedge(text, region, golds, task_question(task)):
            trips.append(("hedging", reason))
    return trips


def guard_verdict(trips: list[tuple[str, str]]) -> Verdict:
    details: dict[str, Any] = {"guards": [g for g, _ in trips], "reasons": dict(trips), "decided": True}
    return Verdict(reward=0.0, details=details, verifier="guards")


class Guarded(Verifier):
    """``inner`` behind the guards: a rollout that trips one scores 0 and ``inner`` is not called."""

    Params = GuardsConfig

    def __init__(self, inner: Any, guards: GuardsConfig):
        super().__init__(guards)
        self.inner, self.guards = inner, guards

    @property
    def name(self) -> str:
        return verifier_name(self.inner)

    @property
    def needs_answer(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.inner, "needs_answer", False))

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        trips = check(self.guards, task, rollout)
        if trips:
            return guard_verdict(trips)
        return await verify(self.inner, task, rollout)

    def parts(self) -> list[Any]:
        return [self.inner]  # started and closed with the guards
