"""The task source's own scorer: reasoning-gym's ``score_answer`` for tasks its generators made.

A generator knows what its answer must look like where value equality does not: ``fraction_simplification``
wants the fraction in lowest terms (``6/8`` equals ``3/4`` but does not answer "simplify to lowest terms"),
``decimal_arithmetic`` accepts an error in the last decimal place. The math verifier asks this scorer first
for a task whose ``metadata.source_dataset`` names a reasoning-gym dataset with a scorer of its own; datasets
whose scorer is the base class's exact string match are left to the math verifier, which knows more renderings.

The scorer gets the extracted final answer as written (and its plain-text forms: wrappers, units and
thousands separators removed, ``\\frac{a}{b}`` as ``a/b``, scientific notation expanded), never a reduced
value. Its verdict is a veto: an answer it does not give full marks scores 0, and one it accepts must still
equal the gold for the math verifier (some scorers are lenient: ``gsm_symbolic`` reads the first number it
finds, so ``-70`` passes for ``70``), unless math-verify cannot read the gold at all. ``metadata.source_config`` (the generator's
options, which the math server records) builds the dataset the scorer belongs to, so settings such as
``decimal_arithmetic``'s precision are the task's own; ``metadata.source_scorer: false`` (recorded for a
generator that keeps the base class's scorer) spares importing reasoning-gym to find that out.

The scorer is called through ``rollgen.verifiers.gymscore.guarded_score``, as ``verifier=reasoning_gym`` calls
it: scorers that ``eval`` the reply get ``ast.literal_eval``, and a form of the answer that is not plain math
never reaches a sympy-parsing scorer (``UnsafeAnswer``; when no form is plain math it is raised, and the math
verifier leaves the answer to math-verify, as for any answer a scorer cannot read).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from rollgen.records import Task
from rollgen.verifiers.extract import SCIENTIFIC as _SCIENTIFIC
from rollgen.verifiers.extract import gold_text, parse_number, plain_answer
from rollgen.verifiers.gymscore import UnsafeAnswer, guarded_score

__all__ = ["scorer_is_built", "source_score", "source_scorer"]

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TEX_FRAC = re.compile(r"\\[dtc]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")

Scorer = Callable[[str | None, dict[str, Any]], float]


_BUILT: dict[tuple[str, str], Scorer | None] = {}


def _scorer(name: str, config_json: str) -> Scorer | None:
    key = (name, config_json)
    if key not in _BUILT:
        if len(_BUILT) >= 256:  # one entry per dataset and generator config: only a strange task file gets here
            _BUILT.clear()
        _BUILT[key] = _build(name, config_json)
    return _BUILT[key]


def _build(name: str, config_json: str) -> Scorer | None:
    """The ``score_answer`` of reasoning-gym dataset ``name`` built with ``config_json``, or None when the
    dataset is unknown or keeps the base class's exact-match scorer."""
    try:
        from reasoning_gym.dataset import ProceduralDataset
        from reasoning_gym.factory import DATASETS
    except ImportError:
        return None
    if name not in DATASETS:
        return None
    dataset_cls, config_cls = DATASETS[name]
    if getattr(dataset_cls, "score_answer", None) is ProceduralDataset.score_answer:
        return None
    options = json.loads(config_json)
    try:
        config = config_cls(**options)
    except (TypeError, ValueError, AssertionError):
        config = config_cls()
    try:
        dataset = dataset_cls(config=config)
    except (TypeError, ValueError, AssertionError, OSError):
        return None
    return lambda answer, entry: guarded_score(name, dataset, answer, entry)


def _key(task: Task) -> tuple[str, str] | None:
    meta = task.metadata or {}
    name = meta.get("source_dataset")
    if not isinstance(name, str) or task.answer is None or meta.get("source_scorer") is False:
        return None  # the math server records whether a generator has its own scorer: no import to find out
    options = meta.get("source_config")
    if not options or not isinstance(options, dict):
        return name, "{}"
    return name, json.dumps(options, sort_keys=True, default=str)


def scorer_is_built(task: Task) -> bool:
    """Whether ``source_scorer(task)`` returns at once (no reasoning-gym import or dataset to build first)."""
    key = _key(task)
    return key is None or key in _BUILT


def source_scorer(task: Task) -> Callable[[str], float] | None:
    """A function scoring an answer string with the task source's own scorer, or None when there is none.
    The first call for a dataset imports reasoning-gym and builds it (seconds): call it off the event loop
    unless ``scorer_is_built``."""
    key = _key(task)
    if key is None:
        return None
    scorer = _scorer(*key)
    if scorer is None:
        return None
    meta = task.metadata
    entry = {"question": meta.get("question", ""), "answer": gold_text(task.answer), "metadata": meta}
    return lambda answer: float(scorer(answer, entry))


def _forms(answer: str) -> list[str]:
    """The answer as written; without wrappers and units; with ``\\frac{a}{b}`` written ``a/b``; with its
    notation made plain (``2,744`` and ``2{,}744`` as ``2744``, ``1.692 \\times 10^3`` as ``1692``). The numbers
    themselves are never changed: ``6/8`` stays ``6/8``."""
    plain = plain_answer(answer)
    forms = [answer.strip(), plain, _TEX_FRAC.sub(r"\1/\2", plain), _THOUSANDS.sub("", plain)]
    if _SCIENTIFIC.fullmatch(plain) and (value := parse_number(plain)) is not None:
        forms.append(str(value.numerator) if value.denominator == 1 else format(value.numerator / value.denominator))
    return list(dict.fromkeys(f for f in forms if f))


def source_score(scorer: Callable[[str], float], answer: str) -> float:
    """The best score of ``answer``'s forms (see ``_forms``), forms the guard refuses left out. Raises what the
    scorer raises, or ``UnsafeAnswer`` when the guard refuses every form."""
    scores: list[float] = []
    refused: UnsafeAnswer | None = None
    for form in _forms(answer):
        try:
            scores.append(scorer(form))
        except UnsafeAnswer as e:
            refused = e
    if not scores and refused is not None:
        raise refused
    return max(scores)
