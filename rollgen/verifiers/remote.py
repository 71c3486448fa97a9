"""``verifier=remote``: the reward from a NeMo Gym resources server's ``POST /verify`` (0.7.0).

The body is the task's NeMo Gym row plus ``response``: the rollout's model and tool turns as an OpenAI
Response (``rollgen.nemogym.items.response_object``), sent with the rollout's session cookies (``server=remote``
seeds the session; used alone, this verifier seeds one itself). The answer (``BaseVerifyResponse``: the request
echoed, ``reward``, ``mask_sample``, ``failure_kind``, ``failure_reason``, the server's own fields) becomes the
verdict: ``reward``, and the other fields but the echoed request as details. A masked sample (a judge that
failed) raises, so the rollout is a ``verifier_error`` rather than a 0; so does a 422 (the row lacks a field the
server needs: the message is FastAPI's ``detail``) or a 500. A reward outside [0, 1] is a ``verifier_error`` too
(rollgen's rewards are in [0, 1]).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rollgen.formats.messages import prompt_len
from rollgen.nemogym.items import response_object
from rollgen.nemogym.taskrow import task_row
from rollgen.records import Rollout, Task, Verdict
from rollgen.servers.remote import RemoteServer, end_session, session_for
from rollgen.verifiers import Verifier

__all__ = ["RemoteVerifier", "RemoteVerifyError"]

ECHOED = ("responses_create_params", "response", "reward")


class RemoteVerifyError(RuntimeError):
    """``/verify`` did not give a reward: an HTTP error, a masked sample, an answer without ``reward``."""


def _detail(text: str) -> str:
    """FastAPI's 422 ``detail`` as one line (``loc: msg`` per error), else the body's start."""
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return text[:300]
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail if isinstance(d, dict))
    return str(detail)[:300]


class RemoteVerifier(Verifier):
    """POSTs each rollout to ``{base_url}/verify``; the server's ``reward`` is the reward."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        base_url: str | None = Field(None, description="the resources server (the server=remote preset: server.base_url)")
        request_timeout_s: float = Field(120.0, gt=0, description="one verify request, at most")

    def __init__(self, params: BaseModel):
        super().__init__(params)
        self._server = RemoteServer(RemoteServer.Params(base_url=params.base_url,  # type: ignore[attr-defined]
                                                        request_timeout_s=params.request_timeout_s))  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        return "remote"

    def check(self) -> None:
        if not self.params.base_url:  # type: ignore[attr-defined]
            raise ValueError("base_url: set it to a running NeMo Gym resources server (server.base_url with server=remote)")

    async def start(self, runtime: Any) -> None:
        await super().start(runtime)
        await self._server.start(runtime)

    async def close(self) -> None:
        await self._server.close()
        await super().close()

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        session = await session_for(self._server, task)
        turns = rollout.messages[prompt_len(rollout.messages):]
        body = task_row(task.model_dump()) | {"response": response_object(
            turns, model=rollout.model, tools=task.tools, usage=rollout.usage,
            truncated=rollout.status == "truncated", rid=f"resp_{rollout.id}")}
        try:
            async with self._server.post("verify", body, session) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        finally:
            end_session()
        if status == 422:
            raise RemoteVerifyError(f"/verify rejected the row (HTTP 422): {_detail(text)}")
        if status >= 400:
            raise RemoteVerifyError(f"/verify failed (HTTP {status}): {text[:300]}")
        try:
            answer = json.loads(text)
        except ValueError:
            raise RemoteVerifyError(f"/verify answered with something that is not JSON: {text[:200]!r}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("reward"), (int, float)):
            raise RemoteVerifyError(f"/verify answered without a numeric 'reward': {text[:200]}")
        details = {k: v for k, v in answer.items() if k not in ECHOED}
        if answer.get("mask_sample") is True:
            raise RemoteVerifyError(f"masked sample ({answer.get('failure_kind') or 'no failure_kind'}: "
                                    f"{answer.get('failure_reason') or ''})".replace(": )", ")"))
        return Verdict(reward=float(answer["reward"]), details=details, verifier=self.name)
