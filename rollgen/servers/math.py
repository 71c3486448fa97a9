"""Math problems from reasoning-gym's procedural generators, or from a JSONL task file.

Generated problems are written once to ``<cache dir>/tasks/<key>.jsonl`` (the run's ``cache_dir``, from the
runtime the server is started on; the key hashes the generator settings and the reasoning-gym version) and
read from there afterwards, so later runs never import reasoning-gym (seconds of start-up). The cache holds
bare questions; the prompt template, the answer instruction and the system prompt are applied as tasks are
yielded, so changing them needs no regeneration.

With ``unique_prompts`` (on for generators by default) a generator's tasks are distinct: a question whose
normalised text (``quality.text.prompt_key``) repeats an earlier one is skipped and the generator draws
on, so ``size: N`` means N distinct tasks; a generator that cannot give N stops the run with a message.
``instruction`` is appended to a bare prompt only when it has no final-answer instruction of its own
(``servers.prompts``); tasks given as chat ``messages`` are sent as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from rollgen.records import Task
from rollgen.runtime import Runtime, cache_root
from rollgen.servers import TaskSourceError
from rollgen.servers.generators import check_generators, generated, reasoning_gym_version
from rollgen.servers.taskfile import TaskFileServer, read_tasks, write_tasks

__all__ = ["MathServer"]

DEFAULT_INSTRUCTION = "Put your final answer within \\boxed{}."


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
    _cache_dir: Path | None = None  # the runtime's, once started

    async def start(self, runtime: Runtime) -> None:
        """Keep generated tasks in the runtime's cache dir."""
        self._cache_dir = runtime.cache_dir

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
            fp["reasoning_gym"] = reasoning_gym_version()
        return fp

    def cache_path(self) -> Path:
        """Where the generated tasks of these params are cached."""
        p = self.params
        key = {"generators": p.generators, "generator_config": p.generator_config, "size": p.size,
               "seed": p.seed, "reasoning_gym": reasoning_gym_version()}
        if p.unique_prompts is not False:
            key["unique_prompts"] = True
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return (self._cache_dir or cache_root()) / "tasks" / f"{digest}.jsonl"

    def _generated(self) -> Path:
        path = self.cache_path()
        if not path.is_file():
            write_tasks(path, _generate(self.params))
        return path


def _check_generators(p: MathServer.Params) -> None:
    check_generators(p.generators, p.generator_config, p.size, p.seed)


def _generate(p: MathServer.Params) -> Iterator[Task]:
    """The bare generated tasks (``prompt`` = the question), generator by generator (``servers.generators``)."""
    try:
        _check_generators(p)
    except ValueError as e:
        raise TaskSourceError(str(e)) from None
    seen: set[bytes] = set()
    for name in p.generators:
        yield from generated(name, p.generator_config.get(name, {}), p.size, p.seed, p.unique_prompts is not False,
                             seen)
