"""Policies: where completions come from. Every policy is an OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from rollgen.runtime import Runtime

__all__ = ["Endpoint", "Policy"]


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send requests. ``api_key`` stays in memory only (``repr`` hides it).

    ``base_urls``: several servers of the same model (``rollgen.policy.pool``); empty means ``base_url`` alone.
    """

    base_url: str
    model: str
    api: Literal["chat", "responses"] = "chat"
    api_key: str | None = field(default=None, repr=False)
    request_timeout_s: float = 120.0
    max_retries: int = 3
    max_retry_time_s: float = 600.0
    retry_backoff_s: float = 0.5
    base_urls: tuple[str, ...] = ()
    eject_after: int = 3
    health_check_s: float = 1.0

    @property
    def urls(self) -> tuple[str, ...]:
        """Every URL requests go to: ``base_urls``, or ``base_url`` alone."""
        return self.base_urls or (self.base_url,)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the model for the collection hash. Servers listed in ``base_urls`` serve the same model,
        so which ones they are is not part of it: a run re-started without a dead server, or with one more,
        continues the same collection."""
        if len(self.base_urls) > 1:
            return {"base_urls": "replicas", "model": self.model, "api": self.api}
        return {"base_url": self.urls[0], "model": self.model, "api": self.api}


class Policy(ABC):
    """A model to sample from. ``serve()`` yields an ``Endpoint`` for the duration of a run."""

    Params: ClassVar[type[BaseModel]]
    runtime: Runtime | None = None  # set by start()

    def __init__(self, params: BaseModel):
        self.params = params

    async def start(self, runtime: Runtime) -> None:
        """Called once before ``serve()``, in the run's event loop: keep what the policy needs from ``runtime``."""
        self.runtime = runtime

    async def close(self) -> None:
        """Called once at the end of the run."""
        self.runtime = None

    @abstractmethod
    def serve(self) -> contextlib.AbstractAsyncContextManager[Endpoint]:
        """Start whatever is needed (or nothing) and yield the endpoint; always clean up."""

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the model, for the rollout cache key."""
        return {"target": f"{type(self).__module__}.{type(self).__qualname__}"}


