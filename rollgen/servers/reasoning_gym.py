"""Every reasoning-gym generator by name (``server=reasoning_gym``), scored by the generator's own scorer.

``generators`` names the generators: a list (equal shares) or ``{name: weight}`` (mixing weights); null (the
default) takes ``DEFAULT_GENERATORS``, one generator from each of eight families;
``size`` tasks in all are shared out by weight (largest remainders; a generator whose share rounds to 0 gives
none) and streamed interleaved in an order fixed by ``seed``, so a run's ``limit`` takes a mix.
``generator_config`` passes each generator its options (``{sudoku: {min_empty: 30}}``); each generator's tasks are
distinct (``unique_prompts``, as for ``server=math``: ``rollgen.servers.generators``). The same settings give the
same tasks. The system prompt asks for the final answer in ``<answer>`` tags, reasoning-gym's convention, which
the verifier reads; ``conf/server/reasoning_gym.yaml`` brings ``verifier=reasoning_gym`` and ``guards=reasoning_gym``.

With ``data_path``, rows of reasoning-gym tasks (``question``, ``answer``, ``metadata.source_dataset`` naming the
generator; reasoning-gym's own dumps, or rollgen's) are read; a row naming no generator is a bad row.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

from pydantic import Field, field_validator

from rollgen.records import Task
from rollgen.servers import TaskSourceError
from rollgen.servers.generators import check_generators, generated, reasoning_gym_version
from rollgen.servers.taskfile import TaskFileServer

__all__ = ["DEFAULT_GENERATORS", "DEFAULT_SYSTEM_PROMPT", "ReasoningGymServer", "shares"]

DEFAULT_SYSTEM_PROMPT = (
    "Think the problem through step by step. Then give only the final answer inside <answer></answer> tags, "
    "for example <answer>42</answer>, with no explanation inside the tags. When the question shows the format "
    "of the answer, follow it exactly.")


DEFAULT_GENERATORS = ("basic_arithmetic", "word_sorting", "letter_counting", "syllogism", "mini_sudoku",
                      "shortest_path", "family_relationships", "number_sequence")


def shares(weights: dict[str, float], size: int) -> dict[str, int]:
    """``size`` split by ``weights`` with the largest-remainder method (ties go to the earlier name)."""
    total = sum(weights.values())
    exact = {name: size * w / total for name, w in weights.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    order = sorted(weights, key=lambda n: (-(exact[n] - counts[n]), list(weights).index(n)))
    for name in order[: size - sum(counts.values())]:
        counts[name] += 1
    return counts


class ReasoningGymServer(TaskFileServer):
    """Tasks from reasoning-gym generators mixed by weight, or reasoning-gym rows from ``data_path``; no tools."""

    class Params(TaskFileServer.Params):
        generators: dict[str, float] | list[str] | None = Field(
            None, description="reasoning-gym generator names (equal shares), or {name: weight}; null: "
                              "DEFAULT_GENERATORS, one of each of eight families")
        generator_config: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                                            description="per-generator options")
        size: int = Field(40, ge=1, description="tasks in all, shared out by weight")
        seed: int = 42
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
        unique_prompts: bool | None = Field(
            None, description="each generator's tasks distinct (generators draw on); null: on for generators, "
                              "off for data_path")

        @field_validator("generators")
        @classmethod
        def _check_generators(cls, value: dict[str, float] | list[str] | None) -> dict[str, float] | list[str] | None:
            if value is None:
                return None
            names = list(value)
            if not names:
                raise ValueError("name at least one reasoning-gym generator, e.g. [basic_arithmetic, word_sorting]")
            if any(not str(n).strip() for n in names):
                raise ValueError("generator names must be non-empty")
            if isinstance(value, list) and len(set(names)) != len(names):
                raise ValueError(f"generators are listed twice: {sorted({n for n in names if names.count(n) > 1})}")
            if isinstance(value, dict):
                bad = {n: w for n, w in value.items() if not (math.isfinite(w) and w > 0)}
                if bad:
                    raise ValueError(f"weights must be positive numbers, got {bad}")
            return value

        def weights(self) -> dict[str, float]:
            g = DEFAULT_GENERATORS if self.generators is None else self.generators
            return dict(g) if isinstance(g, dict) else {name: 1.0 for name in g}

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        """The generators' tasks, interleaved: each generator's share in its own order, the mix fixed by ``seed``."""
        p = self.params
        counts = {n: c for n, c in shares(p.weights(), p.size).items() if c}
        try:
            check_generators(list(counts), p.generator_config, max(counts.values()), p.seed)
        except ValueError as e:
            raise TaskSourceError(str(e)) from None
        unique = p.unique_prompts is not False
        seen: set[bytes] = set()
        streams = {n: generated(n, p.generator_config.get(n, {}), c, p.seed, unique, seen,
                                size_key=f"{n}'s share of server.size") for n, c in counts.items()}
        order = [n for n, c in counts.items() for _ in range(c)]
        random.Random(f"reasoning_gym-mix:{p.seed}").shuffle(order)
        for name in order:
            yield next(streams[name])

    def check(self) -> None:
        """Before any work: a task file has a row, or the generators and their options are reasoning-gym's."""
        super().check()
        p = self.params
        if not p.data_path:
            counts = shares(p.weights(), p.size)
            check_generators(list(counts), p.generator_config, max(counts.values()), p.seed)
            unknown = sorted(set(p.generator_config) - set(counts))
            if unknown:
                raise ValueError(f"generator_config: {unknown} are not in server.generators {list(counts)}")

    def validate_task(self, task: Task) -> None:
        """A row needs ``metadata.source_dataset`` naming a reasoning-gym generator (its scorer decides)."""
        from reasoning_gym.factory import DATASETS

        name = task.metadata.get("source_dataset")
        if not isinstance(name, str) or name not in DATASETS:
            raise ValueError(f"task {task.id!r}: metadata.source_dataset {name!r} is not a reasoning-gym generator "
                             "(its scorer is the verifier)")

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the reasoning-gym version (generated tasks) or the file's hash (``data_path``)."""
        fp = super().fingerprint()
        if not self.params.data_path:
            fp["reasoning_gym"] = reasoning_gym_version()
        return fp
