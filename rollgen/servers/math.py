"""Math problems from reasoning-gym's procedural generators, or from a JSONL task file.

Generated problems are written once to ``<cache dir>/tasks/<key>.jsonl`` (the key hashes the generator
settings and the reasoning-gym version) and read from there afterwards, so later runs never import
reasoning-gym (seconds of start-up). The cache holds bare questions; the prompt template, the answer
instruction and the system prompt are applied as tasks are yielded, so changing them needs no regeneration.

With ``unique_prompts`` (on for generators by default) a generator's tasks are distinct: a question whose
normalised text (``quality.text.prompt_key``) repeats an earlier one is skipped and the generator draws
on, so ``size: N`` means N distinct tasks; a generator that cannot give N stops the run with a message.
``instruction`` is appended to a bare prompt only when it has no final-answer instruction of its own
(``servers.prompts``); tasks given as chat ``messages`` are sent as they are.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from rollgen.records import Task
from rollgen.servers import TaskSourceError
from rollgen.servers.taskfile import TaskFileServer, read_tasks, write_tasks

__all__ = ["MathServer", "cache_dir"]

DEFAULT_INSTRUCTION = "Put your final answer within \\boxed{}."
MAX_DRAWS = 20  # a generator gets at most MAX_DRAWS * size (+ 10,000) draws to find size distinct questions
STALL = 2000  # ...and stops after max(STALL, 2 * size) draws in a row without a new one


def cache_dir() -> Path:
    """``$ROLLGEN_CACHE_DIR``, else ``~/.cache/rollgen``."""
    return Path(os.environ.get("ROLLGEN_CACHE_DIR") or Path.home() / ".cache" / "rollgen").expanduser()


def _default_generator_config() -> dict[str, dict[str, Any]]:
    return {"basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}


class MathServer(TaskFileServer):
    """Math word and arithmetic problems; no tools. Defaults mirror ``conf/server/math.yaml``."""

    class Params(TaskFileServer.Params):
        generators: list[str] = Field(default_factory=lambda: ["basic_arithmetic"])
        generator_config: dict[str, dict[str, Any]] = Field(default_factory=_default_generator_config)
        size: int = Field(20, ge=1, description="tasks per generator")
        seed: int = 42
        instruction: str | None = Field(
            DEFAULT_INSTRUCTION, description="appended on a new line to prompts that carry no final-answer "
                                             "instruction of their own; null: none")
        unique_prompts: bool | None = Field(
            None, description="skip tasks whose normalised prompt repeats an earlier task's (generators draw "
                              "on until size distinct ones); null: on for generators, off for data_path")

        @field_validator("generators")
        @classmethod
        def _check_generators(cls, names: list[str]) -> list[str]:
            if not names:
                raise ValueError("list at least one reasoning-gym dataset, e.g. [basic_arithmetic]")
            if any(not n.strip() for n in names):
                raise ValueError("generator names must be non-empty")
            if len(set(names)) != len(names):
                raise ValueError(f"generators are listed twice: {sorted({n for n in names if names.count(n) > 1})}")
            return names

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        """The generated tasks, from the task cache (generated on first use)."""
        return read_tasks(self._generated())

    def check(self) -> None:
        """Before any work: a task file has a row (its lines are checked as they are read), or the generators
        and their options are reasoning-gym's (unless these params' tasks are cached). Raises ``ValueError``."""
        super().check()
        if not self.params.data_path and not self.cache_path().is_file():
            _check_generators(self.params)

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the reasoning-gym version (generated tasks) or the file's hash (``data_path``)."""
        fp = super().fingerprint()
        if not self.params.data_path:
            fp["reasoning_gym"] = _reasoning_gym_version()
        return fp

    def cache_path(self) -> Path:
        """Where the generated tasks of these params are cached."""
        p = self.params
        key = {"generators": p.generators, "generator_config": p.generator_config, "size": p.size,
               "seed": p.seed, "reasoning_gym": _reasoning_gym_version()}
        if p.unique_prompts is not False:
            key["unique_prompts"] = True
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return cache_dir() / "tasks" / f"{digest}.jsonl"

    def _generated(self) -> Path:
        path = self.cache_path()
        if not path.is_file():
            write_tasks(path, _generate(self.params))
        return path


def _check_generators(p: MathServer.Params) -> None:
    """Every generator is one of reasoning-gym's and accepts its ``generator_config`` options (no tasks made)."""
    from reasoning_gym.factory import DATASETS  # slow (matplotlib and friends): only when the cache is cold

    unknown = [n for n in p.generators if n not in DATASETS]
    if unknown:
        hints = {n: difflib.get_close_matches(n, DATASETS, n=3) for n in unknown}
        did_you_mean = "".join(f" Did you mean {', '.join(h)} for '{n}'?" for n, h in hints.items() if h)
        raise ValueError(
            f"generators: unknown reasoning-gym generators {unknown}.{did_you_mean} "
            f"{len(DATASETS)} are available, e.g. {', '.join(sorted(DATASETS)[:8])}"
        )
    for name in p.generators:
        options = p.generator_config.get(name, {})
        try:
            config = DATASETS[name][1](size=p.size, seed=p.seed, **options)
            if hasattr(config, "validate"):
                config.validate()
        except (TypeError, ValueError, AssertionError) as e:
            raise ValueError(f"generator_config.{name} {options}: {e}") from None


def _generate(p: MathServer.Params) -> Iterator[Task]:
    """The bare generated tasks (``prompt`` = the question), generator by generator; with ``unique_prompts``
    (not false) each generator's ``size`` questions are distinct, drawn from as many indices as needed."""
    import reasoning_gym
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    from rollgen.quality.text import prompt_key

    try:
        _check_generators(p)
    except ValueError as e:
        raise TaskSourceError(str(e)) from None
    unique = p.unique_prompts is not False
    seen: set[bytes] = set()
    for name in p.generators:
        options = p.generator_config.get(name, {})
        has_scorer = DATASETS[name][0].score_answer is not ProceduralDataset.score_answer
        made = last_new = 0
        draws = p.size
        for index, entry in _draws(reasoning_gym, name, options, p.size, p.seed, unique):
            draws = index + 1
            if unique:
                key = prompt_key(entry["question"])
                if key in seen:
                    if index - last_new > max(STALL, 2 * p.size):
                        break  # no new question for a long while: the generator's space is used up
                    continue
                seen.add(key)
                last_new = index
            meta = json.loads(json.dumps(entry.get("metadata") or {}, default=str))
            meta.update(source_dataset=meta.get("source_dataset", name), question=entry["question"])
            # What the math verifier needs to ask the generator's own scorer: whether it has one, its options.
            meta.setdefault("source_scorer", has_scorer)
            meta.setdefault("source_config", options)
            yield Task(id=f"{name}-{p.seed}-{index}", prompt=entry["question"], answer=entry["answer"], metadata=meta)
            made += 1
            if made == p.size:
                break
        if made < p.size:
            raise TaskSourceError(
                f"server.size={p.size}: reasoning-gym '{name}' gave only {made} distinct questions in {draws} draws "
                f"(seed {p.seed}); lower server.size to {made} or less, widen server.generator_config.{name}, "
                f"or set server.unique_prompts=false to allow repeated questions")


def _draws(rg: Any, name: str, options: dict[str, Any], size: int, seed: int, more: bool) -> Iterator[tuple[int, Any]]:
    """(index, entry) for indices 0, 1, ...: the first ``size`` as ``create_dataset(size=size)`` gives them;
    with ``more``, then further indices from larger datasets, until ``MAX_DRAWS * size + 10,000`` in all."""
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
            yield index, dataset[index]
        start, n = n, min(limit, n * 4)


def _reasoning_gym_version() -> str:
    try:
        return metadata.version("reasoning-gym")
    except metadata.PackageNotFoundError:
        raise TaskSourceError("reasoning-gym is not installed; install it or set data_path to a task file") from None
