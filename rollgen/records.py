"""The records passed between stages: Task in, Rollout out. See DESIGN.md, "Records"."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1

Status = Literal["ok", "error", "timeout", "truncated", "verifier_error"]


class Task(BaseModel):
    """One problem: chat ``messages`` or a plain ``prompt``, optional tools, the ground truth."""

    model_config = ConfigDict(extra="forbid")

    id: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    answer: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_input(self) -> Task:
        if not self.messages and not self.prompt:
            raise ValueError("a task needs 'messages' or 'prompt'")
        return self

    def chat(self) -> list[dict[str, Any]]:
        """The task as a fresh list of chat messages."""
        if self.messages:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.prompt}]


class Verdict(BaseModel):
    """A verifier's decision on one rollout."""

    reward: float = Field(ge=0.0, le=1.0)
    details: dict[str, Any] = Field(default_factory=dict)
    verifier: str


class Rollout(BaseModel):
    """One attempt at one task, with everything needed to trust, filter and format it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    task_id: str
    repeat: int
    messages: list[dict[str, Any]]
    completion: str = ""
    reward: float | None = None
    reward_details: dict[str, Any] = Field(default_factory=dict)
    verifier: str | None = None
    status: Status
    error: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    latency_s: float = 0.0
    model: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    turns: int = 0
    config_hash: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def rollout_id(task_id: str, repeat: int) -> str:
    return f"{task_id}#{repeat}"
