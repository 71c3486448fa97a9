"""reasoning-gym's procedural generators as task sources, shared by the servers that draw on them
(``server=math``, ``server=reasoning_gym``).

``check_generators`` checks names and options before any task is made; ``generated`` draws one generator's
tasks. With ``unique`` a generator's ``size`` questions are distinct (a question whose normalised text,
``quality.text.prompt_key``, repeats an earlier one is skipped and the generator draws on from larger datasets;
one that cannot give ``size`` stops the run with a message). Each task records where it came from, so the
generator's own entry can be rebuilt for its scorer: ``source_dataset``, ``source_config`` (the options),
``source_seed``, ``source_size`` (the size of the dataset it was drawn from) and reasoning-gym's own
``source_index``, plus ``source_scorer`` (whether the generator has a scorer of its own) and the ``question``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any

from rollgen.records import Task
from rollgen.servers import TaskSourceError

__all__ = ["MAX_DRAWS", "STALL", "check_generators", "generated", "reasoning_gym_version"]

MAX_DRAWS = 20  # a generator gets at most MAX_DRAWS * size (+ 10,000) draws to find size distinct questions
STALL = 2000  # ...and stops after max(STALL, 2 * size) draws in a row without a new one


def check_generators(names: Sequence[str], configs: Mapping[str, Mapping[str, Any]], size: int, seed: int) -> None:
    """Every generator is one of reasoning-gym's and accepts its options (no tasks made). Raises ``ValueError``."""
    from reasoning_gym.factory import DATASETS  # slow (matplotlib and friends): only when tasks are to be made

    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        hints = {n: difflib.get_close_matches(n, DATASETS, n=3) for n in unknown}
        did_you_mean = "".join(f" Did you mean {', '.join(h)} for '{n}'?" for n, h in hints.items() if h)
        raise ValueError(
            f"generators: unknown reasoning-gym generators {unknown}.{did_you_mean} "
            f"{len(DATASETS)} are available, e.g. {', '.join(sorted(DATASETS)[:8])}"
        )
    for name in names:
        options = dict(configs.get(name, {}))
        try:
            config = DATASETS[name][1](size=size, seed=seed, **options)
            if hasattr(config, "validate"):
                config.validate()
        except (TypeError, ValueError, AssertionError) as e:
            raise ValueError(f"generator_config.{name} {options}: {e}") from None


def generated(name: str, options: Mapping[str, Any], size: int, seed: int, unique: bool,
              seen: set[bytes] | None = None, size_key: str = "server.size") -> Iterator[Task]:
    """``size`` bare tasks (``prompt`` = the question) of generator ``name``; with ``unique``, distinct from each
    other and from ``seen`` (updated), drawn from as many indices as needed. Raises ``TaskSourceError`` when the
    generator gives fewer (naming ``size_key``, the setting that asked for ``size``)."""
    import reasoning_gym
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    from rollgen.quality.text import prompt_key

    seen = set() if seen is None else seen
    options = dict(options)
    has_scorer = DATASETS[name][0].score_answer is not ProceduralDataset.score_answer
    made = last_new = 0
    draws = size
    for index, n, entry in _draws(reasoning_gym, name, options, size, seed, unique):
        draws = index + 1
        if unique:
            key = prompt_key(entry["question"])
            if key in seen:
                if index - last_new > max(STALL, 2 * size):
                    break  # no new question for a long while: the generator's space is used up
                continue
            seen.add(key)
            last_new = index
        meta = json.loads(json.dumps(entry.get("metadata") or {}, default=str))
        meta.update(source_dataset=meta.get("source_dataset", name), question=entry["question"])
        # What a verifier needs to ask the generator's own scorer: whether it has one, and the entry's origin.
        meta.setdefault("source_scorer", has_scorer)
        meta.setdefault("source_config", options)
        meta.update(source_seed=seed, source_size=n)
        yield Task(id=f"{name}-{seed}-{index}", prompt=entry["question"], answer=entry["answer"], metadata=meta)
        made += 1
        if made == size:
            break
    if made < size:
        raise TaskSourceError(
            f"{size_key}={size}: reasoning-gym '{name}' gave only {made} distinct questions in {draws} draws "
            f"(seed {seed}); lower {size_key} to {made} or less, widen server.generator_config.{name}, "
            f"or set server.unique_prompts=false to allow repeated questions")


def _draws(rg: Any, name: str, options: dict[str, Any], size: int, seed: int,
           more: bool) -> Iterator[tuple[int, int, Any]]:
    """(index, dataset size, entry) for indices 0, 1, ...: the first ``size`` as ``create_dataset(size=size)``
    gives them; with ``more``, then further indices from larger datasets, until ``MAX_DRAWS * size + 10,000``."""
    limit = MAX_DRAWS * size + 10_000 if more else size
    start, n = 0, size
    while start < limit:
        try:
            dataset = rg.create_dataset(name, size=n, seed=seed, **options)
        except (TypeError, ValueError, AssertionError) as e:
            if start == 0:
                raise TaskSourceError(f"generator_config.{name} {options}: {e}") from None
            return  # the generator has no more than `start` items
        for index in range(start, n):
            yield index, n, dataset[index]
        start, n = n, min(limit, n * 4)


def reasoning_gym_version() -> str:
    """The installed reasoning-gym's version. Raises ``TaskSourceError`` when it is not installed."""
    try:
        return metadata.version("reasoning-gym")
    except metadata.PackageNotFoundError:
        raise TaskSourceError("reasoning-gym is not installed; install it or set data_path to a task file") from None
