"""Guards against reward hacking: cheap checks that run before any verifier (``guards`` config group).

A rollout that trips a guard scores 0 with ``verifier: guards`` and ``reward_details.guards`` naming each
guard it tripped, and the verifier is not called (no judge tokens spent on it). The guards:

* ``truncated``: ``finish_reason == "length"``, the answer was cut off;
* ``too_long``: more than ``max_chars`` characters;
* ``empty``: nothing after ``</think>`` but whitespace, punctuation, ``\\boxed{}`` or an opener ("Let's solve
  this problem step by step.", the judge "master keys");
* ``copied_from_prompt``: at least ``copy_threshold`` of the completion's sentences are the prompt's;
* ``repetition``: a long completion that compresses below ``min_compression_ratio`` (a loop);
* ``hedging``: several candidate answers: two different ``\\boxed{}`` (where the gold has one value), a
  final answer with "or"/"maybe", or more numbers in the final answer than the gold has ("3, 7, 12" for 7).

``rollgen validate`` shows which guard catches which perturbation, and whether the verifier alone would
have caught it too.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from rollgen.config import GuardsConfig
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier, verifier_name, verify
from rollgen.verifiers.extract import (
    all_boxed,
    answer_region,
    final_answer,
    is_empty_answer,
)
from rollgen.verifiers.math import _NUMBER

__all__ = ["GUARDS", "Guarded", "check", "guard_verdict"]

GUARDS = ("truncated", "too_long", "empty", "copied_from_prompt", "repetition", "hedging")

_ALTERNATION = re.compile(r"\b(?:or|either|maybe|possibly|perhaps|probably)\b", re.IGNORECASE)
_TEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_SPACE = re.compile(r"\s+")


def _numbers(text: str) -> int:
    return len(_NUMBER.findall(_TEX_FRAC.sub(r"\1/\2", text)))


def _gold_texts(task: Task) -> list[str]:
    answer = task.answer
    if answer is None:
        return []
    return [str(a) for a in answer] if isinstance(answer, (list, tuple)) else [str(answer)]


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


def _hedge(region: str, golds: list[str]) -> str | None:
    gold_values = max((_numbers(g) for g in golds), default=0)
    boxes = {_SPACE.sub("", b) for b in all_boxed(region)}
    if len(boxes) > max(1, gold_values):
        return f"{len(boxes)} different \\boxed{{}} answers"
    answer, rule = final_answer(region)
    if answer is None or rule not in ("boxed", "answer_is"):
        return None
    if _ALTERNATION.search(answer) and not any(_ALTERNATION.search(g) for g in golds):
        return f"the final answer hedges: {answer[:80]!r}"
    if gold_values and _numbers(answer) > gold_values:
        return f"{_numbers(answer)} numbers in the final answer where the gold answer has {gold_values}: {answer[:80]!r}"
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
    if cfg.hedging and (reason := _hedge(region, _gold_texts(task))):
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

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()
