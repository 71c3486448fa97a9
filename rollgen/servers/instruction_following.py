"""Instruction following (``server=instruction_following``): requests with IFEval's verifiable instructions.

Without ``data_path`` the server composes ``size`` tasks from its bundled requests
(``rollgen/servers/data/instruction_prompts.json``: 48 writing, explaining, advising and yes-or-no requests)
and between ``min_instructions`` and ``max_instructions`` instructions each, drawn from ``instructions``
(IFEval ids or their short names, default every kind) without conflicting pairs
(``rollgen.servers.ifeval_compose``). The same ``seed`` and ``size`` give the same tasks. Every task it makes
is one a reply can follow: it builds such a reply before keeping the task (``rollgen.verifiers.ifeval.reply``).

With ``data_path``, rows carrying IFEval's ``instruction_id_list`` and ``kwargs`` are read as they are: IFEval's
``input_data.jsonl``, Hugging Face ``google/IFEval`` (json or parquet) and NeMo Gym instruction-following rows;
a row with an unknown instruction id or a bad argument is a bad row (``file:line``).
``conf/server/instruction_following.yaml`` brings the instructions verifier and the prose guards with it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from pydantic import Field, field_validator, model_validator

from rollgen.records import Task
from rollgen.servers import TaskSourceError
from rollgen.servers.ifeval_compose import Base, compose, resolve_kinds
from rollgen.servers.taskfile import TaskFileServer
from rollgen.verifiers.ifeval import compliant_reply, instructions_of

__all__ = ["InstructionFollowingServer", "base_prompts"]

_DATA = "instruction_prompts.json"
_TRIES = 200  # draws per task before giving up on a combination of kinds no reply can follow


@cache
def _data() -> bytes:
    return resources.files("rollgen.servers").joinpath("data", _DATA).read_bytes()


def base_prompts() -> list[Base]:
    """The bundled requests the instructions are composed onto."""
    return [Base(r["id"], r["prompt"], tuple(r["keywords"]), bool(r.get("yes_no"))) for r in json.loads(_data())]


class InstructionFollowingServer(TaskFileServer):
    """Bundled requests with composed IFEval instructions, or IFEval-style rows from ``data_path``; no tools."""

    class Params(TaskFileServer.Params):
        size: int = Field(50, ge=1, description="tasks to compose (without data_path)")
        seed: int = 42
        instructions: list[str] | None = Field(
            None, description="instruction kinds to draw from (IFEval ids or short names: no_comma, title); "
                              "null: every kind")
        min_instructions: int = Field(1, ge=1, le=6, description="instructions per task, at least")
        max_instructions: int = Field(3, ge=1, le=6, description="instructions per task, at most")

        @field_validator("instructions")
        @classmethod
        def _known(cls, names: list[str] | None) -> list[str] | None:
            if names is not None:
                if not names:
                    raise ValueError("list at least one instruction kind, or null for every kind")
                resolve_kinds(names)
            return names

        @model_validator(mode="after")
        def _range(self) -> "InstructionFollowingServer.Params":
            if self.min_instructions > self.max_instructions:
                raise ValueError(f"min_instructions ({self.min_instructions}) is above max_instructions "
                                 f"({self.max_instructions})")
            return self

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        p = self.params
        kinds = resolve_kinds(p.instructions)
        bases = base_prompts()
        order = random.Random(f"ifeval-order:{p.seed}").sample(bases, len(bases))
        for i in range(p.size):
            base = order[i % len(order)]
            rng = random.Random(f"ifeval:{p.seed}:{i}")
            for _ in range(_TRIES):
                composed = compose(rng, base, kinds, p.min_instructions, p.max_instructions)
                if composed.ids and compliant_reply(composed.ids, composed.kwargs, base.keywords) is not None:
                    break
            else:
                raise TaskSourceError(f"server.instructions={kinds}: no combination of {p.min_instructions} to "
                                      f"{p.max_instructions} of them that a reply can follow was found for "
                                      f"{base.prompt!r}; allow more kinds or fewer instructions per task")
            meta = {"instruction_id_list": composed.ids, "kwargs": composed.kwargs, "base_prompt": base.id,
                    "topic_words": list(base.keywords), "source_dataset": "rollgen-ifeval"}
            yield Task(id=f"ifeval-{p.seed}-{i}", prompt=composed.prompt, metadata=meta)

    def validate_task(self, task: Task) -> None:
        """A row needs IFEval's ``instruction_id_list`` and ``kwargs`` (one object per id), with known ids and
        valid arguments."""
        instructions_of(task.metadata)

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the hash of the bundled requests (without ``data_path``)."""
        fp = super().fingerprint()
        if not self.params.data_path:
            fp["prompts_sha256"] = hashlib.sha256(_data()).hexdigest()
        return fp
