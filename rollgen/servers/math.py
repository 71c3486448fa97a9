"""Math problems from reasoning-gym's procedural generators, or from a JSONL task file.

Generated problems are written once to ``<cache dir>/tasks/<key>.jsonl`` (the key hashes the generator
settings and the reasoning-gym version) and read from there afterwards, so later runs never import
reasoning-gym (seconds of start-up). The cache holds bare questions; the prompt template and system prompt
are applied as tasks are yielded, so changing them needs no regeneration.
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

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rollgen.records import Task
from rollgen.servers import ResourceServer
from rollgen.servers.taskfile import read_tasks, write_tasks

__all__ = ["MathServer", "cache_dir"]


def cache_dir() -> Path:
    """``$ROLLGEN_CACHE_DIR``, else ``~/.cache/rollgen``."""
    return Path(os.environ.get("ROLLGEN_CACHE_DIR") or Path.home() / ".cache" / "rollgen").expanduser()


def _default_generator_config() -> dict[str, dict[str, Any]]:
    return {"basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}


class MathServer(ResourceServer):
    """Math word and arithmetic problems; no tools. Defaults mirror ``conf/server/math.yaml``."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        generators: list[str] = Field(default_factory=lambda: ["basic_arithmetic"])
        generator_config: dict[str, dict[str, Any]] = Field(default_factory=_default_generator_config)
        size: int = Field(20, ge=1, description="tasks per generator")
        seed: int = 42
        data_path: str | None = Field(None, description="a JSONL task file used instead of the generators")
        system_prompt: str | None = None
        prompt_template: str = "{question}\nPut your final answer within \\boxed{}."

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

        @field_validator("prompt_template")
        @classmethod
        def _check_template(cls, template: str) -> str:
            if "{question}" not in template:
                raise ValueError("must contain '{question}', where the problem text goes")
            return template

    params: Params

    def tasks(self) -> Iterator[Task]:
        p = self.params
        source = Path(p.data_path) if p.data_path else self._generated()
        skipped = self.bad_rows if self.on_bad_row == "skip" else None
        for task in read_tasks(source, skipped):
            yield self._prompted(task)

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the reasoning-gym version (generated tasks) or the file's hash (``data_path``)."""
        fp = super().fingerprint()
        if self.params.data_path:
            fp["data_sha256"] = _file_sha256(Path(self.params.data_path))
        else:
            fp["reasoning_gym"] = _reasoning_gym_version()
        return fp

    def _prompted(self, task: Task) -> Task:
        """Apply the template to a bare ``prompt`` and prepend the system prompt unless there is one."""
        p = self.params
        if task.messages:
            messages = [dict(m) for m in task.messages]
        else:
            messages = [{"role": "user", "content": p.prompt_template.replace("{question}", task.prompt or "")}]
        if p.system_prompt and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": p.system_prompt})
        return task.model_copy(update={"messages": messages, "prompt": None})

    def cache_path(self) -> Path:
        """Where the generated tasks of these params are cached."""
        p = self.params
        key = {"generators": p.generators, "generator_config": p.generator_config, "size": p.size,
               "seed": p.seed, "reasoning_gym": _reasoning_gym_version()}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return cache_dir() / "tasks" / f"{digest}.jsonl"

    def _generated(self) -> Path:
        path = self.cache_path()
        if not path.is_file():
            write_tasks(path, _generate(self.params))
        return path


def _generate(p: MathServer.Params) -> Iterator[Task]:
    """The bare generated tasks (``prompt`` = the question), generator by generator."""
    import reasoning_gym  # slow (matplotlib and friends): only when the cache is cold
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    unknown = [n for n in p.generators if n not in DATASETS]
    if unknown:
        hints = {n: difflib.get_close_matches(n, DATASETS, n=3) for n in unknown}
        did_you_mean = "".join(f" Did you mean {', '.join(h)} for '{n}'?" for n, h in hints.items() if h)
        raise ValueError(
            f"unknown reasoning-gym generators {unknown}.{did_you_mean} "
            f"{len(DATASETS)} are available, e.g. {', '.join(sorted(DATASETS)[:8])}"
        )
    for name in p.generators:
        options = p.generator_config.get(name, {})
        try:
            dataset = reasoning_gym.create_dataset(name, size=p.size, seed=p.seed, **options)
        except (TypeError, ValueError, AssertionError) as e:
            raise ValueError(f"generator_config.{name} {options}: {e}") from None
        for index, entry in enumerate(dataset):
            meta = json.loads(json.dumps(entry.get("metadata") or {}, default=str))
            meta.update(source_dataset=meta.get("source_dataset", name), question=entry["question"])
            # What the math verifier needs to ask the generator's own scorer: whether it has one, its options.
            meta.setdefault("source_scorer", type(dataset).score_answer is not ProceduralDataset.score_answer)
            meta.setdefault("source_config", options)
            yield Task(id=f"{name}-{p.seed}-{index}", prompt=entry["question"], answer=entry["answer"], metadata=meta)


def _reasoning_gym_version() -> str:
    try:
        return metadata.version("reasoning-gym")
    except metadata.PackageNotFoundError:
        raise ValueError("reasoning-gym is not installed; install it or set data_path to a task file") from None


def _file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None  # tasks() reports the missing file
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
