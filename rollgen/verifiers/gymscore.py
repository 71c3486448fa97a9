"""reasoning-gym tasks scored by their own generator's ``score_answer`` (``verifier=reasoning_gym``).

The answer is the last ``<answer>...</answer>`` in the text after ``</think>`` (reasoning-gym's
``extract_answer``, its convention); without one the scorer gets ``None`` (reasoning-gym's score for a reply
that gives no answer, 0 for every generator) and ``details.extracted`` is null. The scorer is the generator's
own, the base class's exact match included, and it scores against the generator's own entry: tasks made by
``server=reasoning_gym`` or ``server=math`` record where they came from (``source_dataset``,
``source_config``, ``source_seed``, ``source_size``, ``source_index``), and the entry is rebuilt from there,
with its metadata as reasoning-gym made it (tuples stay tuples: ``arc_agi`` and ``rearc`` score the gold answer
0.05 against a JSON copy of their metadata). A rebuilt entry whose question differs from the task's (another
reasoning-gym version) is not used; the task's stored metadata is, as it is for rows from a task file.

The reward is the scorer's, partial credit included (many scorers give 0.01 or 0.05 to any answer in the
tags). A scorer that raises on a reply scores it 0 and says why (``details.scorer_error``); an answer over
``max_answer_chars`` scores 0 without reaching the scorer.

The scorers run in rollgen's process, as reasoning-gym runs them, and some evaluate the reply as Python: four
call ``eval`` on it (``n_queens``, ``string_insertion``, ``spiral_matrix``, ``binary_matrix``) and five
``sympy.parse_expr``, which calls ``eval`` (``puzzle24``, ``countdown``, ``polynomial_multiplication``,
``simple_integration``, ``intermediate_integration``). For the first four, ``eval`` in their module is replaced by
``ast.literal_eval`` (a reply can be a literal list, never code); for the others a reply reaches the scorer only
when it is plain math (``SAFE_MATH``: no ``__``, quotes, backslashes, ``;``, brackets, Python builtins or sympy
parsing and printing names, no number over 12 digits, no power of a power); any other reply scores 0 with
``details.unsafe_answer``. ``guarded_score`` is that call, the one path every reasoning-gym scorer rollgen runs
takes (the math verifier's source scorer, ``rollgen.verifiers.source``, too).
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import sys
import threading
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.validation.cases import Case
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import answer_region, gold_text

__all__ = ["EVAL_SCORERS", "SAFE_MATH", "SYMPY_SCORERS", "ReasoningGymScore", "UnsafeAnswer", "guarded_score",
           "safe_math", "source_entry"]

EVAL_SCORERS = ("n_queens", "string_insertion", "spiral_matrix", "binary_matrix")
SYMPY_SCORERS = ("puzzle24", "countdown", "polynomial_multiplication", "simple_integration", "intermediate_integration")
SAFE_MATH = re.compile(r"[\w\s+\-*/^().,=<>!|&~%]*")
_BANNED_NAMES = frozenset(dir(builtins)) - {"abs", "min", "max", "pow", "round", "True", "False", "None"} | {
    "sympify", "S", "srepr", "lambdify", "preview", "plot", "parse_expr", "var", "symbols", "Symbol", "Function",
    "init_printing", "pprint", "latex", "evaluate", "sympy", "sp", "os", "sys", "subprocess"}
_NAME = re.compile(r"[A-Za-z_]\w*")
_LONG_NUMBER = re.compile(r"\d{13,}")
_POWER_OF_POWER = re.compile(r"(\*\*|\^)\s*(?:[\w.]+\s*(\*\*|\^)|\([^()]*(\*\*|\^))")


def safe_math(answer: str) -> str | None:
    """None when ``answer`` is plain math a sympy parser may read, else why not."""
    if not SAFE_MATH.fullmatch(answer) or "__" in answer:
        return "characters outside plain math"
    if bad := sorted({n for n in _NAME.findall(answer) if n in _BANNED_NAMES}):
        return f"names that are not math: {bad[:5]}"
    if _LONG_NUMBER.search(answer) or _POWER_OF_POWER.search(answer):
        return "a number too large to compute"
    return None


def _literal_eval(text: Any, *args: Any) -> Any:
    """``eval`` for the scorers that evaluate the reply: literals only (lists, numbers, strings), never code."""
    return ast.literal_eval(text) if isinstance(text, str) else text


def _harden(name: str, dataset: Any) -> None:
    """Shadow ``eval`` with ``_literal_eval`` in the module of a scorer that evaluates the reply."""
    if name in EVAL_SCORERS:
        module = sys.modules[type(dataset).__module__]
        if getattr(module, "eval", None) is not _literal_eval:
            module.eval = _literal_eval  # type: ignore[attr-defined]


class UnsafeAnswer(ValueError):
    """A reply that a scorer which evaluates its input must not be given (not plain math)."""


def guarded_score(name: str, dataset: Any, answer: str | None, entry: dict[str, Any]) -> float:
    """``dataset.score_answer(answer, entry)`` for reasoning-gym generator ``name``, guarded: ``eval`` in the
    modules of the scorers that evaluate the reply is ``ast.literal_eval``, and a reply reaches a
    sympy-parsing scorer only when it is plain math (``safe_math``; else ``UnsafeAnswer``, before any parsing).
    Raises what the scorer raises."""
    _harden(name, dataset)
    if answer is not None and name in SYMPY_SCORERS and (why := safe_math(answer)):
        raise UnsafeAnswer(why)
    return float(dataset.score_answer(answer, entry))


_LOCK = threading.Lock()  # datasets keep state; one thread at a time builds, draws and scores
_DATASETS: OrderedDict[tuple[str, str, int | None, int | None], Any] = OrderedDict()
_ENTRIES: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_MAX_DATASETS, _MAX_ENTRIES = 64, 4096


def _dataset(name: str, options: dict[str, Any], seed: int | None, size: int | None) -> Any:
    import reasoning_gym

    key = (name, json.dumps(options, sort_keys=True, default=str), seed, size)
    if key not in _DATASETS:
        extra = {k: v for k, v in (("seed", seed), ("size", size)) if v is not None}
        _DATASETS[key] = reasoning_gym.create_dataset(name, **extra, **options)
        _harden(name, _DATASETS[key])
        if len(_DATASETS) > _MAX_DATASETS:
            _DATASETS.popitem(last=False)
    _DATASETS.move_to_end(key)
    return _DATASETS[key]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def source_entry(task: Task) -> tuple[Any, dict[str, Any], str]:
    """``(dataset, entry, how)`` for scoring ``task``: the entry rebuilt from the generator (``how`` =
    ``"rebuilt"``) or made from the task's stored fields (``"stored"``). Call with ``_LOCK`` held. Raises
    ``ValueError`` when the task names no reasoning-gym generator."""
    from reasoning_gym.factory import DATASETS

    meta = task.metadata or {}
    name = meta.get("source_dataset")
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"task {task.id!r}: metadata.source_dataset {name!r} is not a reasoning-gym generator")
    options = meta.get("source_config") if isinstance(meta.get("source_config"), dict) else {}
    question = meta.get("question") if isinstance(meta.get("question"), str) else task.prompt
    seed, size, index = _int(meta.get("source_seed")), _int(meta.get("source_size")), _int(meta.get("source_index"))
    if seed is not None and size is not None and index is not None and index < size:
        key = (name, json.dumps(options, sort_keys=True, default=str), seed, size, index)
        dataset = _dataset(name, options, seed, size)
        if key not in _ENTRIES:
            _ENTRIES[key] = dataset[index]
            if len(_ENTRIES) > _MAX_ENTRIES:
                _ENTRIES.popitem(last=False)
        entry = _ENTRIES[key]
        if question is None or entry["question"] == question:
            return dataset, entry, "rebuilt"
    answer = gold_text(task.answer) if task.answer is not None else None
    return _dataset(name, options, None, None), {"question": question or "", "answer": answer, "metadata": meta}, "stored"


class ReasoningGymScore(Verifier):
    """The generator's own ``score_answer`` on the last ``<answer>`` tag, against the generator's own entry."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        tag: str = Field("answer", pattern=r"^[A-Za-z][\w-]*$", description="the answer is the last <tag>...</tag>")
        max_answer_chars: int = Field(20_000, ge=1, description="a longer answer scores 0 without reaching the scorer")

    params: Params
    name = "reasoning_gym"

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        from reasoning_gym.utils import extract_answer

        answer = extract_answer(answer_region(rollout.completion or ""), tag_name=self.params.tag)
        with _LOCK:
            dataset, entry, how = source_entry(task)
            details: dict[str, Any] = {"extracted": answer, "expected": entry.get("answer"),
                                       "generator": task.metadata["source_dataset"], "entry": how, "decided": True}
            if answer is not None and len(answer) > self.params.max_answer_chars:
                details["error"] = f"the answer has {len(answer)} characters, over max_answer_chars"
                return Verdict(reward=0.0, details=details, verifier=self.name)
            try:
                score = guarded_score(details["generator"], dataset, answer, entry)
            except UnsafeAnswer as e:
                details["unsafe_answer"] = str(e)
                return Verdict(reward=0.0, details=details, verifier=self.name)
            except Exception as e:  # noqa: BLE001 - the generator's scorer choking on a reply: the reply's fault
                details["scorer_error"] = f"{type(e).__name__}: {e}"[:300]
                score = 0.0
        details["score"] = score
        return Verdict(reward=min(max(score, 0.0), 1.0), details=details, verifier=self.name)

    def validation_cases(self, task: Task, other: Task | None) -> list[Case]:
        """Cases for ``rollgen validate``: the generator's own answer in the tag (bare, after reasoning, after a
        ``<think>`` block, on lines of its own) must score 1; no tag, an empty tag, the answer cut off, and
        another task's answer (alone, or in a later tag) must not. A generator without answers of its own
        (puzzles checked by rules: ``rush_hour``, ``boxnet``) gets only the negative cases."""
        tag = self.params.tag
        gold = gold_text(task.answer) if task.answer is not None else None
        # Many scorers give 0.01 or 0.05 to any answer in the tags (a format reward): no credit above 0.1.
        cases = [Case("empty", False, ""), Case("empty_tag", False, f"Done.\n<{tag}></{tag}>", bound=0.1)]
        if gold is None:
            return cases + [Case("no_answer", False, "I could not solve it.", bound=0.1)]
        cases += [
            Case("gold_in_tag", True, f"<{tag}>{gold}</{tag}>"),
            Case("gold_after_reasoning", True, f"Let me work through this step by step.\n\n<{tag}>{gold}</{tag}>"),
            Case("gold_after_thinking", True, f"<think>Maybe <{tag}>wrong</{tag}>.</think>\n<{tag}>{gold}</{tag}>"),
            Case("gold_on_own_lines", True, f"<{tag}>\n{gold}\n</{tag}>"),
            Case("gold_without_tag", False, gold, bound=0.1),
        ]
        if len(gold) > 1:
            cases.append(Case("truncated", False, f"<{tag}>{gold[: len(gold) // 2]}", finish_reason="length", bound=0.1))
        other_gold = gold_text(other.answer) if other is not None and other.answer is not None else None
        if other_gold is not None and other_gold.strip() != gold.strip():
            cases.append(Case("other_task", False, f"<{tag}>{other_gold}</{tag}>", bound=0.999))
            cases.append(Case("gold_then_other", False, f"<{tag}>{gold}</{tag}> Wait, no.\n<{tag}>{other_gold}</{tag}>",
                              bound=0.999))
        return cases
