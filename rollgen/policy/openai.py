"""``policy=openai``: any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp server, OpenAI)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rollgen.policy import Endpoint, Policy

__all__ = ["EndpointParams", "OpenAIPolicy"]


class EndpointParams(BaseModel):
    """How to reach an OpenAI-compatible endpoint; shared by ``policy=openai`` and the LLM judge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field("http://localhost:8000/v1", pattern=r"^https?://")
    model: str = "default"
    api: Literal["chat", "responses"] = "chat"
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the key")
    request_timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0, le=100)
    max_retry_time_s: float = Field(600.0, gt=0, description="give up retrying a request after this long")
    retry_backoff_s: float = Field(0.5, gt=0, description="first backoff; doubles per attempt, with jitter")
    base_urls: list[Annotated[str, Field(pattern=r"^https?://")]] | None = Field(
        None, description="several servers of the model: requests go to the least busy; replaces base_url")
    eject_after: int = Field(3, ge=1, le=1000, description="failures in a row (5xx, timeouts) that take an endpoint "
                             "out of rotation; a refused connection takes it out at once")
    health_check_s: float = Field(1.0, gt=0, description="first wait before GET /models on an endpoint taken out; "
                                  "doubles up to 30 s until it answers")

    @field_validator("base_urls")
    @classmethod
    def _distinct(cls, urls: list[str] | None) -> list[str] | None:
        if urls is not None:
            if not urls:
                raise ValueError("an empty list; give at least one URL, or null to use base_url")
            seen = [u.rstrip("/") for u in urls]
            if twice := sorted({u for u in seen if seen.count(u) > 1}):
                raise ValueError(f"{twice[0]} is listed twice")
        return urls

    def endpoint(self) -> Endpoint:
        """The endpoint, with the key read from the environment now (it is never stored in the config)."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        urls = tuple(self.base_urls or ())
        return Endpoint(urls[0] if urls else self.base_url, self.model, self.api, key or None, self.request_timeout_s,
                        self.max_retries, self.max_retry_time_s, self.retry_backoff_s, base_urls=urls,
                        eject_after=self.eject_after, health_check_s=self.health_check_s)


class OpenAIPolicy(Policy):
    """Talks to an endpoint that is already running; starts nothing."""

    class Params(EndpointParams):
        pass

    def endpoint(self) -> Endpoint:
        return self.params.endpoint()

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[Endpoint]:
        yield self.endpoint()

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), **self.endpoint().fingerprint()}
